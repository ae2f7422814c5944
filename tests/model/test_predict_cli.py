"""``python -m model.predict``: COCO results for a gold file, which the SA-Co evaluator accepts."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model import rle
from model.eval import evaluate
from model.predict import DEFAULT_CHECKPOINT, main, resolve_checkpoint
from model.sam3 import DEFAULT_DEDUPE_IOU
from model.synthetic import generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate_world(out, seed=3, n_images=1)
    return out, json.loads((out / "gold.json").read_text())


@pytest.fixture(scope="module")
def predictions(world):
    """The default model (the committed tiny checkpoint) with every score kept, so that there is something to look at."""
    out, _ = world
    pred = out / "pred.json"
    assert main(["--checkpoint", "default", "--gt", str(out / "gold.json"), "--images", str(out),
                 "--out", str(pred), "--min-score", "0", "--max-instances", "3", "--device", "cpu"]) == 0
    return pred


def test_default_names_one_checkpoint():
    assert resolve_checkpoint("default") == DEFAULT_CHECKPOINT
    assert Path(DEFAULT_CHECKPOINT) == Path(__file__).resolve().parents[2] / "checkpoints" / "sam3-tiny"
    assert resolve_checkpoint("s3://models/sam3/v2") == "s3://models/sam3/v2"


def test_writes_coco_results_for_every_pair(world, predictions):
    _, gold = world
    results = json.loads(predictions.read_text())
    sizes = {entry["id"]: [entry["height"], entry["width"]] for entry in gold["images"]}
    assert {r["image_id"] for r in results} == set(sizes)  # min score 0: every pair gets instances
    for r in results:
        assert set(r) == {"image_id", "category_id", "segmentation", "bbox", "score"}
        assert r["category_id"] == 1 and 0.0 <= r["score"] <= 1.0 and len(r["bbox"]) == 4
        assert rle.validate(r["segmentation"], size=tuple(sizes[r["image_id"]]))
    per_pair = {}
    for r in results:
        per_pair.setdefault(r["image_id"], []).append(r["score"])
    assert all(len(scores) <= 3 and scores == sorted(scores, reverse=True) for scores in per_pair.values())


def test_records_what_produced_the_predictions(predictions):
    meta = json.loads(predictions.with_suffix(".meta.json").read_text())
    committed = json.loads((Path(DEFAULT_CHECKPOINT) / "manifest.json").read_text())["model_version"]
    assert meta["model_version"] == committed and meta["checkpoint"] == "default"
    assert meta["n_predictions"] == len(json.loads(predictions.read_text())) and len(meta["gt_sha256"]) == 64
    assert meta["dedupe_iou"] == DEFAULT_DEDUPE_IOU  # the engine's deduplication, unless --keep-duplicates
    assert meta["refined_with"] is None


def test_refine_with_draws_the_same_instances_again_with_the_tracker(world, predictions, tmp_path):
    out, _ = world
    tracker = Path(DEFAULT_CHECKPOINT).parent / "sam3-tracker-tiny"
    refined = tmp_path / "refined.json"
    assert main(["--checkpoint", "default", "--gt", str(out / "gold.json"), "--images", str(out), "--out", str(refined),
                 "--min-score", "0", "--max-instances", "3", "--device", "cpu", "--refine-with", str(tracker)]) == 0
    meta = json.loads(refined.with_suffix(".meta.json").read_text())
    assert meta["refined_with"] == json.loads((tracker / "manifest.json").read_text())["model_version"]
    plain, redrawn = json.loads(predictions.read_text()), json.loads(refined.read_text())
    # Scores are SAM 3's; only masks (and boxes) change. Refined masks of one pair may merge into one object: the
    # lower-scored is dropped, so each pair keeps some of its scores, in order.
    for image_id in {r["image_id"] for r in plain}:
        before = [r["score"] for r in plain if r["image_id"] == image_id]
        after = [r["score"] for r in redrawn if r["image_id"] == image_id]
        remaining = iter(before)
        assert after and all(score in remaining for score in after)
    assert any(r["segmentation"] not in [q["segmentation"] for q in plain] for r in redrawn)


def test_no_two_results_of_a_pair_are_one_object_unless_duplicates_are_kept(world, predictions, tmp_path):
    out, _ = world
    by_pair: dict = {}
    for r in json.loads(predictions.read_text()):
        by_pair.setdefault(r["image_id"], []).append(r["segmentation"])
    for masks in by_pair.values():
        assert (rle.iou(masks, masks) - np.eye(len(masks))).max() <= DEFAULT_DEDUPE_IOU
    raw = tmp_path / "raw.json"
    assert main(["--checkpoint", "default", "--gt", str(out / "gold.json"), "--images", str(out), "--out", str(raw),
                 "--min-score", "0", "--max-instances", "3", "--device", "cpu", "--keep-duplicates"]) == 0
    assert json.loads(raw.with_suffix(".meta.json").read_text())["dedupe_iou"] is None


def test_records_sam3s_presence_of_every_pair_beside_the_results(world, predictions):
    _, gold = world
    document = json.loads(predictions.with_suffix(".presence.json").read_text())
    results = json.loads(predictions.read_text())
    assert document["format"] == "dataengine.pair-presence.v1" and document["min_score"] == 0
    assert [r["image_id"] for r in document["pairs"]] == [entry["id"] for entry in gold["images"]]
    for record in document["pairs"]:
        scores = [r["score"] for r in results if r["image_id"] == record["image_id"]]
        assert scores == pytest.approx([q * record["presence_score"] for q in record["query_scores"]], abs=1e-6)
    assert document["below_min_score"] == []  # min score 0: nothing falls below


def test_the_evaluator_scores_the_output(world, predictions):
    out, gold = world
    result = evaluate(out / "gold.json", predictions)
    assert len(result.image_ids) == len(gold["images"])
    assert -1.0 <= result.metrics["cgF1"] <= 1.0


def test_missing_image_is_an_error(world, tmp_path, capsys):
    out, _ = world
    assert main(["--checkpoint", "default", "--gt", str(out / "gold.json"), "--images", str(tmp_path),
                 "--out", str(tmp_path / "pred.json"), "--device", "cpu"]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "pred.json").exists()
