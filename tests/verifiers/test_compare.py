"""SAM 3 alone versus SAM 3 with EV presence and MV filtering, scored with the SA-Co cgF1 evaluator."""
from __future__ import annotations

import json

import pytest

from model.synthetic import generate_world
from verifiers.compare import apply_verifiers, compare, main
from verifiers.model import build_tiny_verifier


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gold")
    generate_world(folder, seed=0, n_images=2)
    gold = json.loads((folder / "gold.json").read_text())
    # "SAM 3" predicts every true instance, plus one false positive on a pair whose concept is absent.
    predictions = [{"image_id": a["image_id"], "category_id": 1, "segmentation": a["segmentation"],
                    "bbox": [0, 0, 1, 1], "score": 0.9} for a in gold["annotations"]]
    negative = next(p for p in gold["images"] if p["phrase_kind"] == "absent")
    predictions.append({**predictions[0], "image_id": negative["id"], "score": 0.8})
    (folder / "pred.json").write_text(json.dumps(predictions))
    return folder, gold, predictions


class FixedVerifier:
    """A stand-in with known answers: EV knows which phrases are absent; MV accepts every mask."""

    version = "fixed"

    def __init__(self, gold):
        self.absent = {p["text_input"] for p in gold["images"] if p["phrase_kind"] == "absent"}

    def score_ev(self, items):
        return [{"accept": 0.9 if item.phrase in self.absent else 0.1} for item in items]

    def score_mv(self, items):
        return [{"accept": 1.0} for _ in items]


def test_sam3_alone_and_with_verifiers_are_scored(world):
    folder, gold, _ = world
    result = compare([folder / "gold.json"], folder / "pred.json", folder, build_tiny_verifier(seed=0))
    assert result["evaluator"].startswith("model.eval")
    assert set(result["results"]) == {"sam3", "ev_presence", "ev_presence_mv"}
    for row in result["results"].values():
        assert set(row) == {"cgF1", "IL_MCC", "positive_micro_F1"}
    assert result["results"]["sam3"]["positive_micro_F1"] == pytest.approx(1.0, abs=1e-3)


def test_ev_presence_gates_pairs_and_mv_removes_rejected_masks(world):
    folder, gold, predictions = world
    verifier = FixedVerifier(gold)
    variants = apply_verifiers(verifier, gold, predictions, folder)
    assert variants["presence_mode"] == "gate"
    assert variants["presence"][predictions[-1]["image_id"]] == pytest.approx(0.1)
    absent_id = predictions[-1]["image_id"]
    gated = [p["score"] for p in variants["ev_presence"] if p["image_id"] == absent_id]
    assert gated == [0.0]  # the false positive on an absent concept is gone
    assert sorted(p["score"] for p in variants["ev_presence"] if p["image_id"] != absent_id) == \
        sorted(p["score"] for p in predictions[:-1])
    assert variants["ev_presence_mv"] == variants["ev_presence"]
    verifier.score_mv = lambda items: [{"accept": 0.0, "reject": 1.0} for _ in items]
    rejected = apply_verifiers(verifier, gold, predictions, folder)
    assert [p["score"] for p in rejected["ev_presence_mv"]] == [0.0]  # every kept mask rejected by MV


def test_exact_presence_replacement_when_sam3_presence_is_given(world):
    folder, gold, predictions = world
    with_presence = [{**p, "presence_score": 0.95} for p in predictions]
    variants = apply_verifiers(FixedVerifier(gold), gold, with_presence, folder)
    assert variants["presence_mode"] == "exact"
    assert variants["ev_presence"][0]["score"] == pytest.approx(0.9 / 0.95 * 0.9)


def test_cli_prints_the_three_systems(world, capsys):
    folder, _, _ = world
    assert main(["--gt", str(folder / "gold.json"), "--pred", str(folder / "pred.json"), "--images", str(folder),
                 "--verifier", "preset:tiny?seed=0", "--json", str(folder / "cmp.json")]) == 0
    out = capsys.readouterr().out
    assert "SAM 3" in out and "+ EV presence" in out and "+ MV removing rejected" in out
    assert json.loads((folder / "cmp.json").read_text())["results"]["sam3"]["cgF1"] is not None
    assert main(["--gt", str(folder / "missing.json"), "--pred", str(folder / "pred.json"), "--images",
                 str(folder), "--verifier", "preset:tiny?seed=0"]) == 2
