"""Open media safely: local paths, ``file://`` and ``s3://`` URIs, with clear errors for bad files.

Every image the workers see comes through ``open_image``: it refuses missing, empty, corrupt and
non-image files, zero-size images and decompression bombs (too many pixels) with a MediaError that
says which. EXIF orientation is applied, so pixel coordinates match what a browser displays.
"""
from __future__ import annotations

import hashlib
import io
import urllib.parse
import warnings
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000
_CHUNK = 1 << 20
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}  # rotations by 90/270 degrees swap width and height


class MediaError(ValueError):
    """A media file that cannot be used; the message says why and names the source."""


def sha256_of(path_or_bytes: str | Path | bytes) -> str:
    """Hex sha256 of bytes, or of a file's content (streamed)."""
    digest = hashlib.sha256()
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        digest.update(path_or_bytes)
        return digest.hexdigest()
    with open(path_or_bytes, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_bytes(source: str | Path, *, s3_client: Any = None) -> bytes:
    """Raw bytes of a local path, ``file://`` URI or ``s3://bucket/key``. Raises MediaError."""
    text = str(source)
    if text.startswith("s3://"):
        return _read_s3(text, s3_client)
    path = Path(urllib.parse.unquote(urllib.parse.urlparse(text).path)) if text.startswith("file://") else Path(text)
    if "://" in text and not text.startswith("file://"):
        raise MediaError(f"{text}: unsupported URI scheme (expected a path, file:// or s3://)")
    if not path.is_file():
        raise MediaError(f"{text}: file not found")
    data = path.read_bytes()
    if not data:
        raise MediaError(f"{text}: file is empty (0 bytes)")
    return data


def _read_s3(uri: str, s3_client: Any) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    if s3_client is None:
        raise MediaError(f"{uri}: no S3 client configured to read s3:// media")
    parsed = urllib.parse.urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise MediaError(f"{uri}: expected s3://bucket/key")
    try:
        data = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise MediaError(f"{uri}: object not found") from exc
        raise MediaError(f"{uri}: cannot read object ({code or exc})") from exc
    except BotoCoreError as exc:
        raise MediaError(f"{uri}: cannot reach object storage ({exc})") from exc
    if not data:
        raise MediaError(f"{uri}: object is empty (0 bytes)")
    return data


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    width, height = image.size
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # malformed EXIF must not make a readable image unreadable
        orientation = None
    return (height, width) if orientation in _TRANSPOSED_ORIENTATIONS else (width, height)


def _open_checked(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Open (lazily) with header checks: an image, non-zero size, at most max_pixels."""
    try:
        # Our own max_pixels guard replaces PIL's global bomb warning (it fires at ~89 Mpx).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # PIL's own hard limit (~179 Mpx), above ours
        raise MediaError(f"{name}: image has too many pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{name}: not a readable image ({exc})") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise MediaError(f"{name}: image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise MediaError(
            f"{name}: image is {width}x{height} = {width * height:,} pixels, above the limit of {max_pixels:,}"
        )
    return image


def image_size(source_bytes: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientation applied), from the header only. Raises MediaError."""
    if not source_bytes:
        raise MediaError("image is empty (0 bytes)")
    return _oriented_size(_open_checked(source_bytes, "image", max_pixels))


def open_image(source: str | Path, *, s3_client: Any = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open a local path, ``file://`` URI or ``s3://bucket/key`` as a fully decoded RGB image.

    Raises MediaError for: missing file or object, zero-byte file, not an image or corrupt/truncated
    data (PIL verify + load), zero-size image, more than ``max_pixels`` pixels.
    """
    name = str(source)
    data = read_bytes(source, s3_client=s3_client)
    _open_checked(data, name, max_pixels).close()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.open(io.BytesIO(data)).verify()  # structural checks (e.g. PNG chunk CRCs)
            image = Image.open(io.BytesIO(data))  # verify() leaves the image unusable: reopen
            image.load()
            image = ImageOps.exif_transpose(image)
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError) as exc:
        raise MediaError(f"{name}: corrupt image data ({exc})") from exc
