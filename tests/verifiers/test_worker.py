"""verifiers.verify_datapoint.v1: JSON in, JSON out; bad input comes back as an error the platform routes to a human."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from model import rle
from workers import verifiers as verifier_tasks
from workers.app import app

RESULT_KEYS = {"task", "model_version", "template_versions", "mv", "ev", "presence_score", "error"}


@pytest.fixture(autouse=True)
def fresh_worker(monkeypatch, tmp_path):
    """Each test is a fresh worker process: no cached verifiers, a private model cache."""
    config = dataclasses.replace(verifier_tasks.CONFIG, model_cache_dir=tmp_path / "cache")
    monkeypatch.setattr(verifier_tasks, "CONFIG", config)
    verifier_tasks.clear_verifiers()
    yield
    verifier_tasks.clear_verifiers()


@pytest.fixture
def scene_png(tmp_path, scene_image):
    path = tmp_path / "scene.png"
    scene_image.save(path)
    return path


def payload(media_uri: str, masks, model_uri: str, *, phrase="yellow square", threshold=0.0, **extra) -> dict:
    body = {"media_uri": media_uri, "phrase": phrase, "masks": masks,
            "model": {"version": "verifier-tiny-v1", "uri": model_uri}, "mv_accept_threshold": threshold, **extra}
    return json.loads(json.dumps(body))  # exactly what crosses the broker


def run_task(body: dict) -> dict:
    result = verifier_tasks.verify_datapoint(body)  # the registered task, called in-process (no broker)
    assert json.loads(json.dumps(result)) == result
    assert set(result) == RESULT_KEYS and result["task"] == "verifiers.verify_datapoint.v1"
    return result


def test_task_is_registered_on_the_llm_queue():
    task = app.tasks["verifiers.verify_datapoint.v1"]
    assert task.name == verifier_tasks.TASK_NAME and task.acks_late
    assert app.amqp.router.route({}, task.name)["queue"].name == "llm"


def test_scores_every_mask_then_ev_on_the_kept_ones(scene_png, scene_rles, tiny_checkpoint):
    masks = [{"id": 11, "rle": scene_rles[0]}, {"id": 12, "rle": scene_rles[1]}]
    result = run_task(payload(scene_png.as_uri(), masks, str(tiny_checkpoint), threshold=0.0))
    assert result["error"] is None and result["model_version"] == "verifier-tiny-v1"
    # The templates the verifier was trained with, which it asks with.
    trained_with = json.loads((tiny_checkpoint / "manifest.json").read_text())["template_versions"]
    assert result["template_versions"] == trained_with == {"mv": "mv.v1", "ev": "ev.v2"}
    assert [m["mask_id"] for m in result["mv"]] == [11, 12]
    for entry in result["mv"]:
        assert set(entry["probabilities"]) == {"accept", "accept_as_text", "flag_label", "whole_image", "reject"}
        assert sum(entry["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert result["ev"]["mask_ids"] == [11, 12]  # threshold 0: MV keeps everything
    assert sum(result["ev"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= result["presence_score"] <= 1.0

    none_kept = run_task(payload(scene_png.as_uri(), masks, str(tiny_checkpoint), threshold=1.0))
    assert none_kept["ev"]["mask_ids"] == []
    # With no kept mask the EV question is the presence question itself.
    assert none_kept["presence_score"] == pytest.approx(1 - none_kept["ev"]["probabilities"]["accept"])
    assert none_kept["presence_score"] == pytest.approx(result["presence_score"], abs=1e-6)


def test_ev_only_judges_exactly_the_given_masks_without_mask_verification(scene_png, scene_rles, tiny_checkpoint):
    masks = [{"id": 11, "rle": scene_rles[0]}, {"id": 12, "rle": scene_rles[1]}]
    # A threshold of 1.0 would make MV keep nothing; ev_only ignores it: a human already accepted these masks.
    result = run_task(payload(scene_png.as_uri(), masks, str(tiny_checkpoint), threshold=1.0, ev_only=True))
    assert result["error"] is None and result["mv"] == [] and result["ev"]["mask_ids"] == [11, 12]
    both = run_task(payload(scene_png.as_uri(), masks, str(tiny_checkpoint), threshold=0.0))
    assert result["ev"]["probabilities"] == pytest.approx(both["ev"]["probabilities"], abs=1e-6)


def test_no_masks_is_a_presence_question(scene_png, tiny_checkpoint):
    result = run_task(payload(scene_png.as_uri(), [], str(tiny_checkpoint), phrase="dog"))
    assert result["error"] is None and result["mv"] == [] and result["ev"]["mask_ids"] == []
    assert result["presence_score"] == pytest.approx(1 - result["ev"]["probabilities"]["accept"])


@pytest.mark.parametrize("change, kind, words", [
    ({"masks": [{"id": 1, "rle": rle.encode(np.zeros((224, 224), dtype=bool))}]}, "input", "empty mask"),
    ({"masks": [{"id": 1, "rle": rle.encode(np.ones((50, 60), dtype=bool))}]}, "input", "does not match"),
    ({"masks": [{"id": 1, "rle": {"size": [224, 224], "counts": "??"}}]}, "input", "bad mask"),
    ({"phrase": "word " * 50}, "input", "characters"),
    ({"phrase": ""}, "input", "phrase"),
    ({"masks": [{"id": "1", "rle": {}}]}, "input", "masks[0]"),
    ({"mv_accept_threshold": 2}, "input", "mv_accept_threshold"),
    ({"ev_only": "yes"}, "input", "ev_only"),
    ({"model": {"version": "v", "uri": "/no/such/checkpoint"}}, "model", "no verifier checkpoint"),
    ({"media_uri": "/no/such/image.png"}, "media", "not found"),
])
def test_bad_input_is_recorded_as_an_error_and_the_worker_keeps_running(scene_png, tiny_checkpoint, change, kind,
                                                                        words):
    result = run_task({**payload(scene_png.as_uri(), [], str(tiny_checkpoint)), **json.loads(json.dumps(change))})
    assert result["error"]["kind"] == kind and words in result["error"]["message"]
    assert result["mv"] == [] and result["presence_score"] is None


def test_the_worker_keeps_running_after_a_bad_item(scene_png, scene_rles, tiny_checkpoint):
    empty = rle.encode(np.zeros((224, 224), dtype=bool))
    bad = run_task(payload(scene_png.as_uri(), [{"id": 1, "rle": scene_rles[0]}, {"id": 2, "rle": empty}],
                           str(tiny_checkpoint)))
    assert bad["error"]["kind"] == "input" and bad["mv"] == []
    good = run_task(payload(scene_png.as_uri(), [{"id": 1, "rle": scene_rles[0]}], str(tiny_checkpoint)))
    assert good["error"] is None and [m["mask_id"] for m in good["mv"]] == [1]


def test_verifier_is_cached_per_model_uri(scene_png, tiny_checkpoint):
    run_task(payload(scene_png.as_uri(), [], str(tiny_checkpoint)))
    first = verifier_tasks.get_verifier(str(tiny_checkpoint))
    run_task(payload(scene_png.as_uri(), [], str(tiny_checkpoint)))
    assert verifier_tasks.get_verifier(str(tiny_checkpoint)) is first
    verifier_tasks.get_verifier("preset:tiny?seed=2")
    verifier_tasks.get_verifier("preset:tiny?seed=3")  # a third model evicts the least recently used
    assert set(verifier_tasks._verifiers) == {"preset:tiny?seed=2", "preset:tiny?seed=3"}


def test_importing_the_task_module_loads_neither_torch_nor_the_platform():
    import subprocess
    import sys

    code = ("import sys, workers.verifiers; "
            "print(*(m in sys.modules for m in ('torch', 'transformers', 'peft', 'dataengine')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "False", "False", "False"]
