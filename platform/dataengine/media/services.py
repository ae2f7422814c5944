"""Ingest: uploads, local folders and S3 prefixes become media items; duplicates and corrupt files are recognised.

A corrupt or non-image file becomes a FAILED item with the reason; it never stops the batch.
"""
from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from PIL import Image, UnidentifiedImageError

from dataengine.accounts.models import Project
from dataengine.errors import InvalidInput, TooLarge
from dataengine.media.models import MediaItem, MediaKind, MediaSource, MediaStatus

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


@dataclass
class IngestReport:
    created: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    def add(self, item: MediaItem, created: bool) -> None:
        if not created:
            self.duplicates.append(item.pk)
        elif item.status == MediaStatus.FAILED:
            self.failed.append(item.pk)
        else:
            self.created.append(item.pk)

    def as_dict(self) -> dict:
        return {"created": self.created, "duplicates": self.duplicates, "failed": self.failed}


def inspect_image(data: bytes) -> tuple[int, int]:
    """(width, height) of a decodable image; raises ValueError saying why it is not one."""
    if not data:
        raise ValueError("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > settings.MEDIA_MAX_PIXELS:
                raise ValueError(f"image has {width * height} pixels, more than the limit {settings.MEDIA_MAX_PIXELS}")
            image.load()
    except UnidentifiedImageError:
        raise ValueError("not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image too large: {exc}") from None
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"corrupt image: {exc}") from None
    if width == 0 or height == 0:
        raise ValueError("image has zero width or height")
    return width, height


def ingest_bytes(project: Project, *, name: str, data: bytes, source: str = MediaSource.UPLOAD) -> tuple[MediaItem, bool]:
    """Store one file as a media item; returns (item, created). Same content in the project → the existing item."""
    if len(data) > settings.MEDIA_MAX_UPLOAD_BYTES:
        raise TooLarge(f"{name}: {len(data)} bytes is more than the limit of {settings.MEDIA_MAX_UPLOAD_BYTES}")
    sha = hashlib.sha256(data).hexdigest()
    existing = MediaItem.objects.filter(project=project, sha256=sha).first()
    if existing:
        return existing, False
    width = height = None
    status, error = MediaStatus.READY, ""
    try:
        width, height = inspect_image(data)
    except ValueError as exc:
        status, error = MediaStatus.FAILED, str(exc)
    suffix = Path(name).suffix.lower()[:10]
    # Content-addressed names: a retried ingest rewrites the same object, never a second copy.
    storage_name = f"media/{project.pk}/{sha[:2]}/{sha}{suffix}"
    if not default_storage.exists(storage_name):
        storage_name = default_storage.save(storage_name, ContentFile(data))
    try:
        with transaction.atomic():
            item = MediaItem.objects.create(
                project=project, kind=MediaKind.IMAGE, name=name[:500], storage_name=storage_name, sha256=sha,
                size_bytes=len(data), width=width, height=height, status=status, error=error, source=source,
            )
    except IntegrityError:  # a concurrent ingest of the same content won
        return MediaItem.objects.get(project=project, sha256=sha), False
    if status == MediaStatus.FAILED:
        log.warning("media %s failed ingest: %s", name, error)
    return item, True


def ingest_folder(project: Project, folder: Path) -> IngestReport:
    """Every file under ``folder`` (recursively, sorted); names are paths relative to it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder")
    report = IngestReport()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            item, created = ingest_bytes(project, name=str(path.relative_to(folder)), data=path.read_bytes(),
                                         source=MediaSource.FOLDER)
        except TooLarge as exc:
            log.warning("skipped %s", exc.message)
            continue
        report.add(item, created)
    return report


def ingest_s3_prefix(project: Project, *, bucket: str, prefix: str, client) -> IngestReport:
    """Every object under s3://bucket/prefix (paginated); names are the object keys."""
    report = IngestReport()
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/"):
                continue
            if obj["Size"] > settings.MEDIA_MAX_UPLOAD_BYTES:
                log.warning("skipped s3://%s/%s: %d bytes over the limit", bucket, obj["Key"], obj["Size"])
                continue
            data = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            item, created = ingest_bytes(project, name=obj["Key"], data=data, source=MediaSource.S3)
            report.add(item, created)
    return report
