"""sam3.propose_masks.v1: JSON in, JSON out; expected failures come back as an error object, not a crash."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from model import rle
from model.sam3.build import build_tiny, save_checkpoint
from model.synthetic import render_scene
from workers import interactive as interactive_tasks
from workers import sam3 as sam3_tasks
from workers.app import app

RESULT_KEYS = {"task", "model_version", "media_uri", "image_size", "proposals", "refined_with", "error"}


@pytest.fixture(autouse=True)
def fresh_worker(monkeypatch, tmp_path):
    """Each test is a fresh worker process: no cached predictors, a private model cache."""
    config = dataclasses.replace(sam3_tasks.CONFIG, model_cache_dir=tmp_path / "cache")
    monkeypatch.setattr(sam3_tasks, "CONFIG", config)
    monkeypatch.setattr(interactive_tasks, "CONFIG", config)
    sam3_tasks.clear_predictors()
    interactive_tasks.clear_click_predictors()
    yield
    sam3_tasks.clear_predictors()
    interactive_tasks.clear_click_predictors()


@pytest.fixture
def scene_png(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(render_scene(0, 1).image).resize((160, 120)).save(path)
    return path


def payload(media_uri: str, phrases=("red circle", "square"), model_uri="preset:tiny?seed=3", **extra) -> dict:
    body = {"media_uri": media_uri, "phrases": list(phrases), "model": {"version": "tiny-v0", "uri": model_uri},
            "score_threshold": 0.2, "mask_threshold": 0.5, "max_instances": 3, **extra}
    return json.loads(json.dumps(body))  # exactly what crosses the broker


def run_task(body: dict) -> dict:
    result = sam3_tasks.propose_masks(body)  # the registered task, called in-process (no broker)
    assert json.loads(json.dumps(result)) == result
    assert set(result) == RESULT_KEYS and result["task"] == "sam3.propose_masks.v1"
    return result


def test_task_is_registered_under_its_versioned_name():
    task = app.tasks["sam3.propose_masks.v1"]
    assert task.name == sam3_tasks.TASK_NAME and task.acks_late
    assert app.amqp.router.route({}, task.name)["queue"].name == "gpu"


def test_good_image_gives_proposals_for_every_phrase(scene_png):
    result = run_task(payload(scene_png.as_uri()))
    assert result["error"] is None and result["model_version"] == "tiny-v0"
    assert result["media_uri"] == scene_png.as_uri() and result["image_size"] == [120, 160]
    assert [p["phrase"] for p in result["proposals"]] == ["red circle", "square"]
    for proposal in result["proposals"]:
        assert 0 < len(proposal["instances"]) <= 3 and proposal["truncated"] is False
        for instance in proposal["instances"]:
            assert rle.validate(instance["rle"], size=(120, 160))
            assert 0.2 < instance["score"] <= 1.0


def test_dedupe_iou_leaves_no_two_masks_of_a_phrase_overlapping_above_it(scene_png):
    result = run_task(payload(scene_png.as_uri(), score_threshold=0.0, max_instances=None, dedupe_iou=0.3))
    assert result["error"] is None
    for proposal in result["proposals"]:
        masks = [instance["rle"] for instance in proposal["instances"]]
        assert masks and (rle.iou(masks, masks) - np.eye(len(masks))).max() <= 0.3


def test_refine_draws_every_mask_again_with_the_named_tracker_and_says_so(scene_png):
    plain = run_task(payload(scene_png.as_uri()))
    sha = "c" * 64
    result = run_task(payload(scene_png.as_uri(), refine={"uri": "preset:tiny-tracker"},
                              media_sha256=sha))
    assert plain["refined_with"] is None and result["error"] is None
    assert result["refined_with"] == {"version": "preset:tiny-tracker", "uri": "preset:tiny-tracker"}
    for before, after in zip(plain["proposals"], result["proposals"]):
        assert after["presence_score"] == before["presence_score"]
        assert [i["score"] for i in after["instances"]] == [i["score"] for i in before["instances"]][
            :len(after["instances"])]
        for instance in after["instances"]:
            assert rle.validate(instance["rle"], size=(120, 160))
            assert instance["refined"]["tracker"] == "preset:tiny-tracker" and len(instance["refined"]["point"]) == 2
    # The tracker's embedding is cached under the media's sha256: the annotators' first click skips the encoder.
    assert interactive_tasks.get_click_predictor("preset:tiny-tracker").has_embedding(sha)


def test_an_unloadable_refining_tracker_is_a_model_error(scene_png, tmp_path):
    result = run_task(payload(scene_png.as_uri(), refine={"uri": str(tmp_path / "no-tracker")}))
    assert result["error"]["kind"] == "model" and result["proposals"] == []


def test_corrupt_image_is_a_media_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = run_task(payload(str(bad)))
    assert result["proposals"] == [] and result["error"]["kind"] == "media"
    assert "bad.png" in result["error"]["message"]
    assert run_task(payload(str(tmp_path / "missing.png")))["error"]["kind"] == "media"


def test_unloadable_model_is_a_model_error(scene_png, tmp_path):
    result = run_task(payload(str(scene_png), model_uri=str(tmp_path / "no-such-checkpoint")))
    assert result["error"]["kind"] == "model" and result["proposals"] == []
    assert result["image_size"] == [120, 160]
    assert run_task(payload(str(scene_png), model_uri="preset:enormous"))["error"]["kind"] == "model"


@pytest.mark.parametrize("change", [
    {"phrases": ["red circle", "  "]},
    {"phrases": "red circle"},
    {"media_uri": ""},
    {"score_threshold": 2},
    {"max_instances": -1},
    {"dedupe_iou": 0},
    {"dedupe_iou": "0.7"},
    {"model": {"uri": "preset:tiny"}},
    {"refine": {"uri": ""}},
    {"refine": "preset:tiny-tracker"},
    {"media_sha256": "abc"},
])
def test_bad_input_is_an_input_error(scene_png, change):
    body = {**payload(str(scene_png)), **change}
    result = run_task(body)
    assert result["error"]["kind"] == "input" and result["proposals"] == []


def test_predictor_is_cached_per_model_uri_and_a_new_uri_loads_without_restart(scene_png, tmp_path):
    model, processor = build_tiny(seed=5)
    checkpoint = save_checkpoint(model, processor, tmp_path / "ckpt", manifest={"model_version": "tiny-v5"})
    first = sam3_tasks.get_predictor("preset:tiny?seed=3")
    assert sam3_tasks.get_predictor("preset:tiny?seed=3") is first
    run_task(payload(str(scene_png)))
    assert sam3_tasks.get_predictor("preset:tiny?seed=3") is first
    result = run_task(payload(str(scene_png), model_uri=str(checkpoint)))
    assert result["error"] is None
    assert sam3_tasks.get_predictor(str(checkpoint)).version == "tiny-v5"
    sam3_tasks.get_predictor("preset:tiny?seed=4")  # a third model evicts the least recently used
    assert set(sam3_tasks._predictors) == {str(checkpoint), "preset:tiny?seed=4"}


@pytest.mark.s3
def test_reads_media_and_checkpoint_from_s3(s3_server, scene_png, tmp_path):
    client = s3_server.client()
    bucket = s3_server.create_bucket("engine")
    client.upload_file(str(scene_png), bucket, "media/scene.png")
    model, processor = build_tiny(seed=2)
    folder = save_checkpoint(model, processor, tmp_path / "ckpt", manifest={"model_version": "tiny-v2"})
    for path in folder.iterdir():
        client.upload_file(str(path), bucket, f"models/tiny-v2/{path.name}")
    body = payload(f"s3://{bucket}/media/scene.png", model_uri=f"s3://{bucket}/models/tiny-v2")
    result = sam3_tasks.propose_masks_for(body, s3=client)
    assert result["error"] is None and result["image_size"] == [120, 160] and len(result["proposals"]) == 2
    missing = sam3_tasks.propose_masks_for({**body, "media_uri": f"s3://{bucket}/media/none.png"}, s3=client)
    assert missing["error"]["kind"] == "media"


def test_importing_the_task_module_loads_neither_torch_nor_the_platform():
    import subprocess
    import sys

    # (kombu itself probes for django.utils, so "django" in sys.modules says nothing about our code.)
    code = "import sys, workers.sam3; print(*(m in sys.modules for m in ('torch', 'transformers', 'dataengine')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "False", "False"]
