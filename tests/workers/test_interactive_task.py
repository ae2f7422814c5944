"""sam3.segment_click.v1: JSON in, one mask out; bad media, models and prompts are errors, not crashes."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from PIL import Image

from model import rle
from model.sam3.build import build_tiny, save_checkpoint
from model.sam3.interactive import build_tiny_tracker, save_tracker_checkpoint
from model.synthetic import render_scene
from workers import interactive
from workers.app import app

ROOT = Path(__file__).resolve().parents[2]
RESULT_KEYS = {"task", "model_version", "tracker", "media_uri", "image_size", "rle", "score", "object_score",
               "cached_embedding", "timings_ms", "error"}


@pytest.fixture(autouse=True)
def fresh_worker(monkeypatch, tmp_path):
    """Each test is a fresh worker process: no cached predictors or embeddings, a private model cache."""
    monkeypatch.setattr(interactive, "CONFIG", dataclasses.replace(interactive.CONFIG,
                                                                   model_cache_dir=tmp_path / "cache"))
    interactive.clear_click_predictors()
    yield
    interactive.clear_click_predictors()


@pytest.fixture
def scene_png(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(render_scene(0, 1).image).resize((160, 120)).save(path)
    return path


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def payload(media: Path | str, *, sha: str | None = None, tracker="preset:tiny-tracker?seed=3", **extra) -> dict:
    body = {"media_uri": str(media), "media_sha256": sha or sha_of(Path(media)),
            "model": {"version": "sam3-v1", "uri": tracker}, "points": [[40, 30], [120, 100]], "labels": [1, 0],
            "box": None, **extra}
    return json.loads(json.dumps(body))  # exactly what crosses the broker


def run_task(body: dict) -> dict:
    result = interactive.segment_click(body)  # the registered task, called in-process (no broker)
    assert json.loads(json.dumps(result)) == result
    assert set(result) == RESULT_KEYS and result["task"] == "sam3.segment_click.v1"
    return result


def test_task_is_registered_routed_to_a_gpu_side_queue_and_keeps_its_result():
    task = app.tasks["sam3.segment_click.v1"]
    assert task.name == interactive.TASK_NAME and task.ignore_result is False
    assert app.amqp.router.route({}, task.name)["queue"].name in ("gpu", "interactive")


def test_first_click_encodes_and_the_second_skips_reading_the_media(scene_png):
    first = run_task(payload(scene_png.as_uri(), sha=sha_of(scene_png)))
    assert first["error"] is None and first["cached_embedding"] is False
    assert first["model_version"] == "sam3-v1" and first["tracker"] == "preset:tiny-tracker?seed=3"
    assert first["image_size"] == [120, 160] and rle.validate(first["rle"], size=(120, 160))
    assert 0 <= first["score"] <= 1 and set(first["timings_ms"]) == {"encode", "decode"}
    sha = sha_of(scene_png)
    scene_png.unlink()  # a later click must not need the file at all
    second = run_task(payload(scene_png.as_uri(), sha=sha, points=[[40, 30]], labels=[1], box=[10, 10, 90, 80]))
    assert second["error"] is None and second["cached_embedding"] is True
    assert second["timings_ms"]["encode"] < first["timings_ms"]["encode"]


def test_bad_media_is_a_media_error_and_the_worker_keeps_going(scene_png, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(scene_png.read_bytes()[:200])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    zero = tmp_path / "zero.png"
    zero.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 8 + b"\x08\x02\x00\x00\x00" + b"\x00" * 4)
    for path, reason in ((corrupt, "corrupt.png"), (empty, "empty"), (zero, "zero.png"),
                         (tmp_path / "missing.png", "not found")):
        result = run_task(payload(str(path), sha="0" * 64))
        assert result["error"]["kind"] == "media" and reason in result["error"]["message"]
        assert result["rle"] is None
    assert run_task(payload(scene_png))["error"] is None  # still serving


def test_unreachable_s3_is_a_media_error(scene_png):
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url="http://127.0.0.1:9", aws_access_key_id="x", aws_secret_access_key="y",
                          region_name="us-east-1", config=Config(connect_timeout=1, retries={"max_attempts": 0}))
    result = interactive.segment_click_for(payload("s3://bucket/media/scene.png", sha="1" * 64), s3=client)
    assert result["error"]["kind"] == "media" and "s3://bucket/media/scene.png" in result["error"]["message"]


def test_unloadable_trackers_are_model_errors(scene_png, tmp_path):
    concept = save_checkpoint(*build_tiny(seed=0), tmp_path / "concept", manifest={})
    for tracker, reason in ((str(tmp_path / "nowhere"), "no checkpoint folder"),
                            (str(concept), "not a Sam3TrackerModel"),
                            ("preset:enormous-tracker", "unknown tracker preset")):
        result = run_task(payload(scene_png, tracker=tracker))
        assert result["error"]["kind"] == "model" and reason in result["error"]["message"]
    assert run_task(payload(scene_png))["error"] is None


def test_a_new_tracker_uri_loads_without_restart(scene_png, tmp_path):
    folder = save_tracker_checkpoint(*build_tiny_tracker(seed=5), tmp_path / "trk", manifest={"model_version": "t5"})
    assert run_task(payload(scene_png))["error"] is None
    result = run_task(payload(scene_png, tracker=str(folder)))
    assert result["error"] is None and result["cached_embedding"] is False  # another model: its own embedding
    assert interactive.get_click_predictor(str(folder)).version == "t5"
    assert set(interactive._predictors) == {"preset:tiny-tracker?seed=3", str(folder)}


@pytest.mark.parametrize("change", [
    {"labels": [1, 2]},
    {"labels": [1]},
    {"points": [], "labels": [], "box": None},
    {"points": [[400, 30], [1, 1]]},
    {"box": [50, 50, 10, 10]},
    {"media_sha256": "abc"},
    {"media_uri": ""},
    {"model": {"uri": ""}},
])
def test_bad_input_is_an_input_error(scene_png, change):
    result = run_task({**payload(scene_png), **change})
    assert result["error"]["kind"] == "input" and result["rle"] is None


def test_importing_the_task_module_loads_neither_torch_nor_the_platform():
    code = "import sys, workers.interactive; print(*(m in sys.modules for m in ('torch', 'transformers', 'dataengine')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         cwd=ROOT)
    assert out.stdout.split() == ["False", "False", "False"]


@pytest.mark.redis
@pytest.mark.slow
def test_through_a_real_broker_and_worker(scene_png, tmp_path):
    """A Celery worker process on Redis answers the click through the result backend, as the web view waits."""
    from celery import Celery

    db = 14
    url = f"redis://127.0.0.1:6379/{db}"
    queue = f"interactive-test-{uuid.uuid4().hex[:8]}"
    # A GPU worker has no Django: without DJANGO_SETTINGS_MODULE, Celery's Django fixup stays off.
    env = {**{k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")},
           "CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url, "HF_HUB_OFFLINE": "1",
           "MODEL_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--include", "workers.interactive",
         "-Q", f"{queue},interactive", "-P", "solo", "--without-heartbeat", "--without-gossip", "--without-mingle",
         "--loglevel", "WARNING"], cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True)
    client = Celery("test-client", broker=url, backend=url)
    client.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    try:
        body = payload(scene_png)
        # A loaded 2-core machine may need minutes to import torch; a quiet one needs seconds.
        first = client.send_task(interactive.TASK_NAME, args=[body], queue=queue).get(timeout=300)
        second = client.send_task(interactive.TASK_NAME, args=[body], queue=queue).get(timeout=30)
        assert first["error"] is None and first["cached_embedding"] is False
        assert second["error"] is None and second["cached_embedding"] is True and second["rle"] == first["rle"]
    except Exception:
        print(log.read_text()[-4000:])
        raise
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)
        client.close()
