"""Bulk ingest from a local folder: recursive, duplicates recognised, corrupt files kept as failed."""
import json

import pytest
from django.core.management import CommandError, call_command

from dataengine.media.models import MediaItem
from tests.conftest import png_bytes

pytestmark = [pytest.mark.pg, pytest.mark.django_db]


def test_a_folder_is_ingested_and_a_second_run_only_finds_duplicates(project, tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.png").write_bytes(png_bytes(seed=1))
    (tmp_path / "sub" / "b.png").write_bytes(png_bytes(seed=2))
    (tmp_path / "sub" / "copy-of-a.png").write_bytes(png_bytes(seed=1))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    call_command("ingest_media", str(project.pk), "--folder", str(tmp_path))
    assert json.loads(capsys.readouterr().out) == {"created": 2, "duplicates": 1, "failed": 1}
    assert sorted(MediaItem.objects.values_list("name", flat=True)) == ["a.png", "broken.jpg", "sub/b.png"]
    call_command("ingest_media", str(project.pk), "--folder", str(tmp_path))
    assert json.loads(capsys.readouterr().out) == {"created": 0, "duplicates": 4, "failed": 0}


def test_a_missing_folder_or_project_is_a_clear_error(project, tmp_path):
    with pytest.raises(CommandError, match="is not a folder"):
        call_command("ingest_media", str(project.pk), "--folder", str(tmp_path / "nope"))
    with pytest.raises(CommandError, match="does not exist"):
        call_command("ingest_media", "999999", "--folder", str(tmp_path))
