"""Score calibration: the fast search scores a map exactly as the official evaluator scores the folded model's
predictions, folding maps the logits as stated, the fit finds the shift of an under-confident model, and a
calibrated checkpoint is a new version that names its parent."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.eval import evaluate
from model.eval.cgf1 import IOU_THRESHOLDS
from model.sam3.build import LoadedModel, load_checkpoint
from model.sam3.predictor import ConceptPredictor
from model.synthetic import generate_world
from model.training.calibrate import (
    CandidateTable,
    PairCandidates,
    ScoreCalibration,
    collect_candidates,
    fit_calibration,
    fold_calibration,
    main,
)
from model.training.evaluate import predict_gold

COMMITTED = Path(__file__).resolve().parents[2] / "checkpoints" / "sam3-tiny"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> LoadedModel:
    return load_checkpoint(str(COMMITTED), cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> tuple[dict, Path]:
    folder = tmp_path_factory.mktemp("world")
    generate_world(folder, seed=21, n_images=6, size=224)
    return json.loads((folder / "gold.json").read_text()), folder


@pytest.mark.parametrize("calibration", [
    ScoreCalibration(),
    ScoreCalibration(presence_scale=4.0, presence_bias=3.0, query_scale=2.0),
    ScoreCalibration(presence_scale=0.5, presence_bias=6.0, query_scale=8.0),
], ids=["identity", "moderate", "lenient"])
def test_the_search_scores_a_map_as_the_evaluator_scores_the_folded_models_predictions(
        committed, small_world, calibration):
    gold, images = small_world
    table = CandidateTable(collect_candidates(ConceptPredictor(committed), gold, images))
    searched = table.metrics(calibration)

    folded = copy.deepcopy(committed.model)
    fold_calibration(folded, calibration)
    predictions = predict_gold(ConceptPredictor((folded, committed.processor)), gold, images)
    official = evaluate(gold, predictions).metrics

    for name in ("cgF1", "positive_micro_F1", "IL_MCC", "IL_precision", "IL_recall"):
        assert searched[name] == pytest.approx(official[name], abs=1e-9), name
    if calibration == ScoreCalibration(presence_scale=0.5, presence_bias=6.0, query_scale=8.0):
        assert table.kept(calibration).sum() > 0  # the comparison covered kept instances, not only empty sets


def _first_pair_inputs(loaded: LoadedModel, world: tuple[dict, Path]) -> dict:
    """The model inputs of the world's first (image, phrase) pair."""
    gold, images = world
    entry = gold["images"][0]
    with Image.open(images / entry["file_name"]) as image:
        return loaded.processor(images=image.convert("RGB"), text=[entry["text_input"]], return_tensors="pt")


def test_folding_moves_the_presence_and_query_logits_by_the_stated_map(committed, small_world):
    calibration = ScoreCalibration(presence_scale=2.0, presence_bias=-1.5, query_scale=3.0)
    folded = copy.deepcopy(committed.model)
    fold_calibration(folded, calibration)
    pixels = _first_pair_inputs(committed, small_world)
    with torch.no_grad():
        before = committed.model(**pixels)
        after = folded(**pixels)
    # Sam3Model clamps presence logits to +-10 and query logits to +-12, after the folded map as before it.
    assert torch.allclose(after.presence_logits, (2.0 * before.presence_logits - 1.5).clamp(-10, 10), atol=1e-4)
    assert torch.allclose(after.pred_logits, (3.0 * before.pred_logits).clamp(-12, 12), atol=1e-4)
    assert torch.equal(after.pred_masks, before.pred_masks)  # masks and boxes are not touched
    assert torch.equal(after.pred_boxes, before.pred_boxes)


def _pair(image_id, presence, query, *, positive):
    """A pair with one query whose mask matches the only true instance (positive) or nothing (negative)."""
    hit = np.ones(len(IOU_THRESHOLDS), dtype=np.int64) if positive else np.zeros(len(IOU_THRESHOLDS), dtype=np.int64)
    return PairCandidates(image_id=image_id, presence_logit=presence, query_logits=np.array([query]),
                          tp_by_prefix=np.stack([np.zeros(len(IOU_THRESHOLDS), dtype=np.int64), hit]),
                          num_gt=int(positive))


def test_the_fit_finds_the_shift_of_a_model_that_ranks_right_but_scores_too_low():
    # Presence separates the pairs perfectly (-1 on positives, -4 on negatives) but every score is under 0.5.
    pairs = [_pair(i, -1.0, 2.0, positive=True) for i in range(20)]
    pairs += [_pair(100 + i, -4.0, 2.0, positive=False) for i in range(20)]
    calibration, fitted, identity = fit_calibration(pairs)

    assert identity["cgF1"] == pytest.approx(0.0, abs=1e-6) and identity["IL_MCC"] == pytest.approx(0.0, abs=1e-6)
    assert fitted["cgF1"] == pytest.approx(1.0, abs=1e-3)
    kept = CandidateTable(pairs).kept(calibration)
    assert kept[:20].tolist() == [1] * 20 and kept[20:].tolist() == [0] * 20


def test_a_well_calibrated_model_keeps_the_identity():
    pairs = [_pair(i, 3.0, 3.0, positive=True) for i in range(10)]
    pairs += [_pair(100 + i, -3.0, 3.0, positive=False) for i in range(10)]
    calibration, fitted, identity = fit_calibration(pairs)
    assert calibration == ScoreCalibration() and fitted == identity


def test_a_map_that_would_reverse_the_ranking_is_refused():
    with pytest.raises(ValueError, match="scales must be > 0"):
        ScoreCalibration(presence_scale=-1.0)
    with pytest.raises(ValueError, match="no evaluated pairs"):
        CandidateTable([])


def test_the_cli_writes_a_new_version_that_names_its_parent_and_the_map(tmp_path, capsys):
    out = tmp_path / "calibrated"
    code = main(["--checkpoint", str(COMMITTED), "--out", str(out), "--work-dir", str(tmp_path / "work"),
                 "--scenes", "4"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    parent = json.loads((COMMITTED / "manifest.json").read_text())["model_version"]
    loaded = load_checkpoint(str(out), cache_dir=tmp_path / "cache")  # strict: every file listed and hashed
    manifest = loaded.manifest
    calibrated_from = manifest["score_calibration"]["calibrated_from"]
    assert calibrated_from == {"model_version": parent, "uri": str(COMMITTED)}
    assert loaded.version == printed["model_version"]
    # The training record is the parent's: what it was trained from and by which code.
    committed = json.loads((COMMITTED / "manifest.json").read_text())
    assert manifest["base_model_version"] == committed["base_model_version"]
    assert manifest["train_code_version"] == committed.get("train_code_version", committed["code_version"])
    calibration = manifest["score_calibration"]
    identity = (calibration["presence_scale"], calibration["presence_bias"], calibration["query_scale"]) == (1, 0, 1)
    # Content-addressed: a new version exactly when the map changed the weights.
    assert loaded.version.startswith("sam3-") and (loaded.version == parent) == identity
    assert calibration["fitted_on"]["seed"] == 9 and calibration["fitted_on"]["n_pairs"] > 0
    assert {"presence_scale", "presence_bias", "query_scale"} <= calibration.keys()
    assert "cgF1" in manifest["test_metrics"] and "cgF1" in manifest["test_metrics_before_calibration"]
    assert manifest["learning_curve"]  # the parent's training record travels with it
    assert "## Score calibration" in (out / "README.md").read_text()


def test_a_snapshot_gold_file_can_be_the_fitting_set_but_not_also_the_test_set(tmp_path, small_world, capsys):
    _, images = small_world
    out = tmp_path / "calibrated"
    assert main(["--checkpoint", str(COMMITTED), "--out", str(out), "--gold", str(images / "gold.json"),
                 "--test-gold", str(images / "gold.json")]) == 2
    assert "another set than the one it is tested on" in capsys.readouterr().err and not out.exists()

    assert main(["--checkpoint", str(COMMITTED), "--out", str(out), "--work-dir", str(tmp_path / "work"),
                 "--gold", str(images / "gold.json"), "--scenes", "3"]) == 0
    fitted_on = json.loads((out / "manifest.json").read_text())["score_calibration"]["fitted_on"]
    assert fitted_on["kind"] == "gold" and fitted_on["path"] == str(images / "gold.json")
    assert len(fitted_on["sha256"]) == 64


def test_undoing_the_calibration_gives_back_the_raw_scores_to_train_on(committed, small_world, tmp_path, capsys):
    out = tmp_path / "raw"
    assert main(["--checkpoint", str(COMMITTED), "--out", str(out), "--work-dir", str(tmp_path / "w"), "--undo"]) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = committed.manifest["score_calibration"]
    undone = printed["score_calibration_undone"]
    assert undone["from"]["model_version"] == committed.version
    assert undone["presence_scale"] == pytest.approx(1 / stored["presence_scale"])
    raw = load_checkpoint(str(out), cache_dir=tmp_path / "c")
    assert raw.version == printed["model_version"] != committed.version and "score_calibration" not in raw.manifest
    # Folding the stored map onto the raw model gives the committed model's logits again.
    refolded = copy.deepcopy(raw.model)
    fold_calibration(refolded, ScoreCalibration(stored["presence_scale"], stored["presence_bias"],
                                                stored["query_scale"]))
    pixels = _first_pair_inputs(committed, small_world)
    with torch.no_grad():
        assert torch.allclose(refolded(**pixels).presence_logits, committed.model(**pixels).presence_logits,
                              atol=1e-4)
    assert main(["--checkpoint", str(out), "--out", str(tmp_path / "again"), "--work-dir", str(tmp_path / "w"),
                 "--undo"]) == 2
    assert "not score-calibrated" in capsys.readouterr().err


def test_the_cli_reports_a_checkpoint_it_cannot_load(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert "error:" in capsys.readouterr().err
