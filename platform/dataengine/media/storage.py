"""Where media files live: the default storage (a local folder or an S3 bucket) and URIs for workers."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage


def media_uri(storage_name: str) -> str:
    """A URI a worker can read without Django: file:///abs/path or s3://bucket/key."""
    if settings.S3_BUCKET:
        location = getattr(default_storage, "location", "") or ""
        key = f"{location.strip('/')}/{storage_name}" if location else storage_name
        return f"s3://{settings.S3_BUCKET}/{key}"
    return Path(default_storage.path(storage_name)).resolve().as_uri()


def s3_client():
    """A boto3 client for the configured S3 endpoint (signature v4, path-style addressing)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.S3_ENDPOINT_URL,
        aws_access_key_id=settings.S3_ACCESS_KEY_ID,
        aws_secret_access_key=settings.S3_SECRET_ACCESS_KEY,
        region_name=settings.S3_REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=30,
                      retries={"max_attempts": 2}),
    )
