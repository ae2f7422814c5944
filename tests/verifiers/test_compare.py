"""SAM 3 alone versus SAM 3 with EV presence and MV filtering, scored with the SA-Co cgF1 evaluator."""
from __future__ import annotations

import json

import pytest

from model.synthetic import generate_world
from verifiers.compare import apply_verifiers, compare, load_presence, main
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


def _presence_file(predictions, pairs, below=(), min_score=0.5):
    """A PRED.presence.json document: SAM 3's presence per pair, query = score / presence per prediction."""
    return {"format": "dataengine.pair-presence.v1", "min_score": min_score,
            "pairs": [{"image_id": image_id, "presence_score": value,
                       "query_scores": [p["score"] / value for p in predictions if p["image_id"] == image_id]}
                      for image_id, value in pairs.items()],
            "below_min_score": list(below)}


def test_exact_presence_replaces_sam3_presence_in_every_score(world):
    folder, gold, predictions = world
    presence = {p["image_id"]: 0.95 for p in predictions}  # SAM 3's presence: scores are query x 0.95
    variants = apply_verifiers(FixedVerifier(gold), gold, predictions, folder,
                               sam3_presence=_presence_file(predictions, presence))
    assert variants["presence_mode"] == "exact"
    absent_id = predictions[-1]["image_id"]
    # present pairs: query 0.9 / 0.95 x EV presence 0.9; the absent pair's false positive: 0.8 / 0.95 x 0.1
    assert [p["score"] for p in variants["ev_presence"] if p["image_id"] != absent_id] == \
        pytest.approx([0.9 / 0.95 * 0.9] * (len(predictions) - 1))
    assert [p["score"] for p in variants["ev_presence"] if p["image_id"] == absent_id] == \
        pytest.approx([0.8 / 0.95 * 0.1])
    assert all(set(p) == set(predictions[0]) for p in variants["ev_presence"])  # no helper fields leak


def test_exact_presence_brings_back_instances_sam3_presence_dropped(world):
    folder, gold, predictions = world
    present = next(p for p in gold["images"] if p["phrase_kind"] != "absent")
    # SAM 3 was unsure (presence 0.4): the instance (query 0.9) scored 0.36 and was not in the predictions.
    dropped = {**predictions[0], "image_id": present["id"], "score": 0.36, "query_score": 0.9}
    others = [p for p in predictions if p["image_id"] != present["id"]]
    presence = {p["image_id"]: 0.95 for p in others}
    document = _presence_file(others, {**presence, present["id"]: 0.4}, below=[dropped])
    variants = apply_verifiers(FixedVerifier(gold), gold, others, folder, sam3_presence=document)
    restored = [p for p in variants["ev_presence"] if p["image_id"] == present["id"]]
    assert [p["score"] for p in restored] == pytest.approx([0.9 * 0.9])  # query x EV presence >= 0.5: counted
    assert restored[0] in variants["ev_presence_mv"]  # and MV (accepting everything) keeps it


def test_a_presence_file_of_other_predictions_is_refused(world):
    folder, gold, predictions = world
    presence = {p["image_id"]: 0.95 for p in predictions}
    wrong = _presence_file(predictions, presence)
    wrong["pairs"][0]["query_scores"] = [0.1] * len(wrong["pairs"][0]["query_scores"])
    with pytest.raises(ValueError, match="other predictions"):
        apply_verifiers(FixedVerifier(gold), gold, predictions, folder, sam3_presence=wrong)
    short = _presence_file(predictions[1:], presence)
    with pytest.raises(ValueError, match="does not match"):
        apply_verifiers(FixedVerifier(gold), gold, predictions, folder, sam3_presence=short)
    with pytest.raises(ValueError, match="min score"):
        apply_verifiers(FixedVerifier(gold), gold, predictions, folder,
                        sam3_presence=_presence_file(predictions, presence, min_score=0.6))


class PresenceVerifier(FixedVerifier):
    """EV presence = a given value per phrase (SAM 3's own, or 1); MV accepts every mask."""

    def __init__(self, gold, by_phrase):
        super().__init__(gold)
        self.by_phrase = by_phrase

    def score_ev(self, items):
        return [{"accept": 1.0 - self.by_phrase[item.phrase]} for item in items]


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """model.predict (the tiny SAM 3 with random weights) on a one-image world: PRED.json + its presence file."""
    from model.predict import main as predict

    folder = tmp_path_factory.mktemp("predicted")
    generate_world(folder, seed=3, n_images=1)
    assert predict(["--checkpoint", "preset:tiny?seed=0", "--gt", str(folder / "gold.json"), "--images", str(folder),
                    "--out", str(folder / "pred.json"), "--min-score", "0.3", "--max-instances", "4",
                    "--device", "cpu"]) == 0
    gold = json.loads((folder / "gold.json").read_text())
    return folder, gold, json.loads((folder / "pred.json").read_text())


def test_predict_records_every_pairs_presence(predicted):
    folder, gold, predictions = predicted
    document = load_presence(folder / "pred.presence.json", folder / "pred.json")
    assert {r["image_id"] for r in document["pairs"]} == {p["id"] for p in gold["images"]}
    assert all(0.0 <= r["presence_score"] <= 1.0 for r in document["pairs"])
    assert document["min_score"] == 0.3
    # random weights: presence ~0.5 and queries ~0.5, so every query passed and every score fell below
    assert predictions == [] and document["below_min_score"]
    assert all(p["score"] < 0.3 <= p["query_score"] for p in document["below_min_score"])
    assert json.loads((folder / "pred.meta.json").read_text())["presence"] == "pred.presence.json"


def _counted(predictions):
    """What the evaluator counts: (pair, score) of predictions with score >= 0.5."""
    return sorted((p["image_id"], round(p["score"], 6)) for p in predictions if p["score"] >= 0.5)


class ScriptedPredictor:
    """ConceptPredictor's ``propose`` with known numbers: phrase k of an image has presence PRESENCES[k % 3] and
    queries QUERIES (masks: the gold mask of the image), selected as the real one selects."""

    PRESENCES = (0.3, 0.6, 0.9)
    QUERIES = (0.95, 0.7, 0.55, 0.4)

    def __init__(self, mask):
        self.mask = mask

    def propose(self, image, phrases, *, score_threshold=0.5, max_instances=None, query_threshold=None,
                dedupe_iou=None):
        assert dedupe_iou is None  # one mask for every query: the test counts them
        from model.sam3.predictor import Instance, PhraseProposal

        proposals = []
        for k, phrase in enumerate(phrases):
            presence = self.PRESENCES[k % 3]
            instances = [Instance(rle=self.mask, box_xyxy=[0.0, 0.0, 1.0, 1.0], score=q * presence, query_score=q)
                         for q in self.QUERIES if q * presence > score_threshold
                         and (query_threshold is None or q > query_threshold)]
            proposals.append(PhraseProposal(phrase=phrase, presence_score=presence,
                                            instances=instances[:max_instances]))
        return proposals


def test_exact_mode_reproduces_sam3_with_its_own_presence_and_restores_what_it_dropped(world):
    from model.predict import predict_gold, predict_gold_with_presence

    folder, gold, _ = world
    predictor = ScriptedPredictor(gold["annotations"][0]["segmentation"])
    # Every scripted query has the same mask: keep them all (no deduplication) to count them.
    predictions, document = predict_gold_with_presence(predictor, gold, folder, max_instances=3, dedupe_iou=None)
    assert predictions == predict_gold(predictor, gold, folder, max_instances=3, dedupe_iou=None)
    # The COCO results are what selecting on the score gives: q x presence >= 0.5 among the 3 best.
    expected = []
    for pair in gold["images"]:
        record = next(r for r in document["pairs"] if r["image_id"] == pair["id"])
        expected += [(pair["id"], round(q * record["presence_score"], 6)) for q in ScriptedPredictor.QUERIES[:3]
                     if q * record["presence_score"] >= 0.5]
    assert _counted(predictions) == sorted(expected) and expected
    assert {r["image_id"] for r in document["pairs"]} == {p["id"] for p in gold["images"]}
    assert document["below_min_score"] and all(p["score"] < 0.5 <= p["query_score"]
                                               for p in document["below_min_score"])

    sam3 = {r["image_id"]: r["presence_score"] for r in document["pairs"]}
    phrase_of = {p["id"]: p["text_input"] for p in gold["images"]}
    assert len(set(phrase_of.values())) == len(phrase_of)  # EV answers by phrase below
    own = PresenceVerifier(gold, {phrase_of[i]: v for i, v in sam3.items()})
    variants = apply_verifiers(own, gold, predictions, folder, sam3_presence=document)
    assert variants["presence_mode"] == "exact"
    assert _counted(variants["ev_presence"]) == _counted(predictions)
    # EV presence 1 everywhere: each of the 3 best instances whose query score reaches 0.5 counts, at its query.
    sure = PresenceVerifier(gold, {phrase: 1.0 for phrase in phrase_of.values()})
    variants = apply_verifiers(sure, gold, predictions, folder, sam3_presence=document)
    assert _counted(variants["ev_presence"]) == sorted((p["id"], q) for p in gold["images"]
                                                       for q in ScriptedPredictor.QUERIES[:3])
    assert _counted(variants["ev_presence_mv"]) == _counted(variants["ev_presence"])  # MV accepts everything


def test_compare_uses_the_presence_file_beside_the_predictions(predicted):
    folder, gold, _ = predicted
    result = compare([folder / "gold.json"], folder / "pred.json", folder, build_tiny_verifier(seed=0))
    assert result["presence_mode"] == "exact" and result["presence_file"].endswith("pred.presence.json")
    other = folder / "other.json"
    other.write_text(json.dumps([{"image_id": gold["images"][0]["id"], "category_id": 1, "bbox": [0, 0, 1, 1],
                                  "score": 0.9}]))
    with pytest.raises(ValueError, match="another predictions file"):
        compare([folder / "gold.json"], other, folder, build_tiny_verifier(seed=0),
                presence_path=folder / "pred.presence.json")


def test_cli_prints_the_three_systems(world, capsys):
    folder, _, _ = world
    assert main(["--gt", str(folder / "gold.json"), "--pred", str(folder / "pred.json"), "--images", str(folder),
                 "--verifier", "preset:tiny?seed=0", "--json", str(folder / "cmp.json")]) == 0
    out = capsys.readouterr().out
    assert "SAM 3" in out and "+ EV presence" in out and "+ MV removing rejected" in out
    assert json.loads((folder / "cmp.json").read_text())["results"]["sam3"]["cgF1"] is not None
    assert main(["--gt", str(folder / "missing.json"), "--pred", str(folder / "pred.json"), "--images",
                 str(folder), "--verifier", "preset:tiny?seed=0"]) == 2
