"""Media and snapshots in a real S3 server (SeaweedFS, signatures checked)."""
import pytest
from botocore.exceptions import ClientError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from dataengine.engine.exports import export_snapshot
from dataengine.media.models import MediaItem
from dataengine.media.services import ingest_s3_prefix
from dataengine.media.storage import media_uri
from tests.conftest import png_bytes, token_client
from tests.platform.test_api import upload

pytestmark = [pytest.mark.s3, pytest.mark.pg, pytest.mark.django_db]


@pytest.fixture
def s3_storage(settings, s3_server):
    bucket = s3_server.create_bucket("media")
    settings.S3_BUCKET, settings.S3_ENDPOINT_URL = bucket, s3_server.endpoint_url
    settings.S3_ACCESS_KEY_ID, settings.S3_SECRET_ACCESS_KEY = s3_server.access_key, s3_server.secret_key
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": bucket, "endpoint_url": s3_server.endpoint_url,
                    "access_key": s3_server.access_key, "secret_key": s3_server.secret_key,
                    "region_name": s3_server.region, "signature_version": "s3v4", "addressing_style": "path",
                    "file_overwrite": False},
    }}
    return bucket


def test_uploaded_media_land_in_the_bucket_and_workers_get_an_s3_uri(project, lead, s3_server, s3_storage):
    data = png_bytes(seed=3)
    response = upload(token_client(lead), project, ("cat.png", data))
    assert response.status_code == 201
    item = MediaItem.objects.get()
    stored = s3_server.client().get_object(Bucket=s3_storage, Key=item.storage_name)["Body"].read()
    assert stored == data
    assert media_uri(item.storage_name) == f"s3://{s3_storage}/{item.storage_name}"
    assert token_client(lead).get(f"/api/media/{item.pk}/file").getvalue() == data


def test_a_wrong_secret_is_refused_by_the_server(s3_server, s3_storage):
    with pytest.raises(ClientError) as refused:
        s3_server.client(secret_key="not-the-secret").put_object(Bucket=s3_storage, Key="x", Body=b"x")
    assert refused.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "AccessDenied",
                                                       "InvalidAccessKeyId")


def test_ingest_from_an_s3_prefix_keeps_going_past_corrupt_objects(project, s3_server, s3_storage):
    client = s3_server.client()
    source = s3_server.create_bucket("incoming")
    for i in range(3):
        client.put_object(Bucket=source, Key=f"batch1/img{i}.png", Body=png_bytes(seed=10 + i))
    client.put_object(Bucket=source, Key="batch1/readme.txt", Body=b"not an image")
    client.put_object(Bucket=source, Key="batch1/dup.png", Body=png_bytes(seed=10))
    client.put_object(Bucket=source, Key="other/skip.png", Body=png_bytes(seed=99))
    report = ingest_s3_prefix(project, bucket=source, prefix="batch1/", client=client)
    assert (len(report.created), len(report.duplicates), len(report.failed)) == (3, 1, 1)
    assert MediaItem.objects.get(pk=report.failed[0]).name == "batch1/readme.txt"
    assert not MediaItem.objects.filter(name="other/skip.png").exists()


def test_snapshots_are_written_to_the_bucket(project, s3_server, s3_storage):
    snapshot = export_snapshot(project)
    body = s3_server.client().get_object(Bucket=s3_storage, Key=snapshot.storage_name)["Body"].read()
    assert body.startswith(b'{"info"')
    assert default_storage.exists(snapshot.storage_name)
    default_storage.save("probe.txt", ContentFile(b"ok"))
    assert s3_server.client().get_object(Bucket=s3_storage, Key="probe.txt")["Body"].read() == b"ok"
