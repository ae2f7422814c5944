"""open_image refuses every kind of bad media with a MediaError that says what is wrong."""
from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from model.media import MediaError, image_size, open_image, sha256_of


def png(width: int = 40, height: int = 30, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds (almost) no pixel data: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_opens_path_and_file_uri_as_rgb(tmp_path):
    rgba = Image.new("RGBA", (17, 9), (10, 20, 30, 128))
    rgba.save(tmp_path / "a.png")
    for source in (tmp_path / "a.png", str(tmp_path / "a.png"), (tmp_path / "a.png").as_uri()):
        image = open_image(source)
        assert image.mode == "RGB" and image.size == (17, 9)


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("empty.png", b"", "empty"),
        ("notes.txt", b"this is a text file, not a picture\n", "not a readable image"),
        ("truncated.png", png(200, 150)[:600], "corrupt"),
        ("zero-width.png", png_header_only(0, 10), "image"),
        ("too-big.png", png_header_only(8000, 6000), "above the limit"),
        ("bomb.png", png_header_only(100_000, 100_000), "too many pixels"),
    ],
)
def test_bad_files_raise_media_error(tmp_path, name, data, message):
    with pytest.raises(MediaError, match=message):
        open_image(write(tmp_path, name, data))


def test_bit_flip_in_pixel_data_is_corrupt(tmp_path):
    data = bytearray(png(64, 64))
    start = data.index(b"IDAT") + 40
    data[start] ^= 0xFF
    with pytest.raises(MediaError, match="corrupt"):
        open_image(write(tmp_path, "flipped.png", bytes(data)))


def test_missing_file_and_unknown_scheme(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        open_image(tmp_path / "nope.png")
    with pytest.raises(MediaError, match="unsupported"):
        open_image("http://example.com/a.png")
    with pytest.raises(MediaError, match="S3 client"):
        open_image("s3://bucket/a.png")
    assert issubclass(MediaError, ValueError)


def test_max_pixels_is_a_parameter(tmp_path):
    path = write(tmp_path, "ok.png", png(100, 100))
    assert open_image(path, max_pixels=10_000).size == (100, 100)
    with pytest.raises(MediaError, match="above the limit"):
        open_image(path, max_pixels=9_999)


def test_exif_orientation_is_applied_consistently(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: stored 40x30, displayed 30x40
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="JPEG", exif=exif)
    data = buffer.getvalue()
    assert image_size(data) == (30, 40)
    assert open_image(write(tmp_path, "rotated.jpg", data)).size == (30, 40)


def test_image_size_and_sha256(tmp_path):
    data = png(33, 21)
    assert image_size(data) == (33, 21)
    with pytest.raises(MediaError):
        image_size(b"GIF? no")
    with pytest.raises(MediaError):
        image_size(b"")
    path = write(tmp_path, "x.png", data)
    assert sha256_of(data) == sha256_of(path) == sha256_of(str(path)) == hashlib.sha256(data).hexdigest()


@pytest.mark.s3
def test_reads_s3_objects(s3_server):
    client = s3_server.client()
    bucket = s3_server.create_bucket("media")
    data = png(25, 15)
    client.put_object(Bucket=bucket, Key="a/b.png", Body=data)
    assert open_image(f"s3://{bucket}/a/b.png", s3_client=client).size == (25, 15)
    with pytest.raises(MediaError, match="not found"):
        open_image(f"s3://{bucket}/a/missing.png", s3_client=client)
    client.put_object(Bucket=bucket, Key="empty.png", Body=b"")
    with pytest.raises(MediaError, match="empty"):
        open_image(f"s3://{bucket}/empty.png", s3_client=client)
