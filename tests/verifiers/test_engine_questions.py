"""Held-out verdicts on the questions the engine asks: SAM 3's proposals, then EV on what the human accepted."""
from __future__ import annotations

import json

import numpy as np
import pytest

from model import rle as rle_lib
from model.sam3.predictor import Instance, PhraseProposal
from model.synthetic import generate_world
from verifiers.engine_questions import engine_questions, main, meta_path
from verifiers.training import load_examples


class GoldPlusDecoyPredictor:
    """Proposes every true instance of a pair and one mask of another object (the decoy); its semantic mask is the
    union of the true instances."""

    def __init__(self, gold: dict):
        by_pair = {}
        for entry in gold["images"]:
            by_pair[(entry["file_name"], entry["text_input"])] = [
                a["segmentation"] for a in gold["annotations"] if a["image_id"] == entry["id"]]
        self.by_pair = by_pair
        self.size = {entry["file_name"]: (entry["height"], entry["width"]) for entry in gold["images"]}
        self.file_name = None

    def propose(self, image, phrases, *, score_threshold, max_instances, dedupe_iou):
        proposals = []
        everything = [r for (name, _), rles in self.by_pair.items() if name == self.file_name for r in rles]
        for phrase in phrases:
            true = self.by_pair[(self.file_name, phrase)]
            decoy = next((r for r in everything if r not in true), None)
            instances = [Instance(rle=r, box_xyxy=[0, 0, 1, 1], score=0.9) for r in true]
            if decoy is not None:
                instances.append(Instance(rle=decoy, box_xyxy=[0, 0, 1, 1], score=0.1))
            left_out = instances[max_instances:]
            semantic = rle_lib.merge(true) if true else rle_lib.encode(np.zeros(self.size[self.file_name], bool))
            proposals.append(PhraseProposal(phrase, 0.9, instances[:max_instances],
                                            best_beyond_cap=left_out[0].score if left_out else 0.0,
                                            semantic_rle=semantic))
        return proposals


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engine-world")
    generate_world(folder, seed=3, n_images=1)
    return folder


def test_each_proposal_gets_an_mv_question_and_ev_judges_what_the_first_annotator_accepted(world):
    gold = json.loads((world / "gold.json").read_text())
    predictor = GoldPlusDecoyPredictor(gold)
    predictor.file_name = gold["images"][0]["file_name"]
    rows = list(engine_questions(world / "gold.json", predictor, max_instances=10, error_rate=0.0))
    pairs = {(e["file_name"], e["text_input"]) for e in gold["images"]}
    assert {(r["image"], r["phrase"]) for r in rows} == pairs
    for (name, phrase) in pairs:
        true = predictor.by_pair[(name, phrase)]
        mv = [r for r in rows if r["task"] == "mv" and r["phrase"] == phrase]
        [before] = [r for r in rows if r["kind"] == "engine_before_check" and r["phrase"] == phrase]
        [ev] = [r for r in rows if r["task"] == "ev" and r["kind"] != "engine_before_check" and r["phrase"] == phrase]
        assert all(len(r["rles"]) == 1 and r["kind"] == "engine_proposal" for r in mv)
        # Before anyone looked: zero boxes, "accept" (absent) exactly for a negative.
        assert before["task"] == "ev" and before["rles"] == []
        assert before["label"] == before["gold"] == ("reject" if true else "accept")
        # Error-free annotators: true instances accepted, the decoy rejected, and the boxed set is complete.
        assert [r["label"] for r in mv] == ["accept"] * len(true) + ["reject"] * (len(mv) - len(true))
        assert all(r["gold"] == r["label"] == r["correct"] for r in mv + [ev])
        assert ev["rles"] == true and ev["label"] == "accept"
        assert ev["kind"] == ("engine_after_mv" if true else "engine_zero_boxes")
        # SAM 3's witnesses: its presence, and its best proposal the question leaves unboxed (before anyone looked,
        # the best of all; after the check, the rejected decoy's 0.1, or none).
        assert before["sam3_presence"] == ev["sam3_presence"] == 0.9
        assert before["sam3_best_unboxed"] == (0.9 if true else 0.1 if len(mv) else 0.0)
        assert ev["sam3_best_unboxed"] == (0.1 if len(mv) > len(true) else 0.0)
        assert before["sam3_proposals"] == ev["sam3_proposals"] == len(mv)  # how many masks SAM 3 proposed
        assert before["sam3_best_beyond_cap"] == ev["sam3_best_beyond_cap"] == 0.0  # a cap of 10 left none out
        # The rejected decoy is another phrase's true instance, which that phrase scored 0.9: 0.8 better than 0.1.
        assert ev["sam3_competing_margin"] == pytest.approx(0.8 if len(mv) > len(true) else 0.0)
        if true:  # before anyone looked, a positive's own instances are its best candidates
            assert before["sam3_competing_margin"] <= 0.0
        # What each question leaves unboxed, for calibration to ask MV about: everything, then the rejected decoy.
        assert before["unboxed_rles"] == [r["rles"][0] for r in mv]
        assert ev["unboxed_rles"] == [r["rles"][0] for r in mv if r["label"] == "reject"]
        # ... with each one's margin: the least of them is the witness.
        assert len(before["unboxed_margins"]) == len(mv) and min(before["unboxed_margins"], default=0.0) == before[
            "sam3_competing_margin"]
        assert ev["unboxed_margins"] == pytest.approx([0.8] if len(mv) > len(true) else [])
        # Where SAM 3 sees the phrase outside the boxes: all of it before anyone looked, nothing of a complete set.
        height, width = predictor.size[name]
        assert before["sam3_uncovered"] == pytest.approx(sum(rle_lib.area(true)) / (height * width))
        assert ev["sam3_uncovered"] == 0.0


def test_an_incomplete_proposal_set_is_an_ev_reject(world):
    gold = json.loads((world / "gold.json").read_text())
    predictor = GoldPlusDecoyPredictor(gold)
    predictor.file_name = gold["images"][0]["file_name"]
    rows = list(engine_questions(world / "gold.json", predictor, max_instances=1, error_rate=0.0))
    for (_, phrase), true in predictor.by_pair.items():
        [ev] = [r for r in rows if r["task"] == "ev" and r["kind"] != "engine_before_check" and r["phrase"] == phrase]
        assert ev["label"] == ("reject" if len(true) > 1 else "accept")
        # The instance the cap of one left out is SAM 3's sign that the set may be incomplete.
        assert ev["sam3_best_beyond_cap"] == (0.9 if len(true) > 1 else 0.1 if len(true) == 1 else 0.0)
        # ... and so is its semantic mask, covering the instances the set misses.
        height, width = predictor.size[predictor.file_name]
        assert ev["sam3_uncovered"] == pytest.approx(sum(rle_lib.area(true[1:])) / (height * width))


def test_the_command_writes_examples_calibration_reads_with_their_provenance(world, tmp_path):
    out = tmp_path / "examples.jsonl"
    assert main(["--sam3", "preset:tiny?seed=0", "--gold", str(world / "gold.json"), "--out", str(out)]) == 0
    examples = load_examples(out, world)
    assert examples and {e.task for e in examples} == {"mv", "ev"} and all(e.gold for e in examples)
    meta = json.loads(meta_path(out).read_text())
    assert meta["sam3"] == "preset:tiny?seed=0" and meta["max_instances"] == 3  # the version that proposed
    assert sum(meta["questions"].values()) == len(examples)
    for example in examples:
        if example.task == "mv":
            assert rle_lib.area(example.rles)[0] > 0


def test_with_a_click_tracker_the_questions_are_about_the_masks_it_drew(world):
    from PIL import Image

    from model.sam3.interactive import ClickPredictor, build_tiny_tracker
    from model.sam3.refine import refine_proposals

    gold = json.loads((world / "gold.json").read_text())
    predictor = GoldPlusDecoyPredictor(gold)
    predictor.file_name = name = gold["images"][0]["file_name"]
    tracker = ClickPredictor(build_tiny_tracker(seed=0), uri="preset:tiny-tracker")
    rows = list(engine_questions(world / "gold.json", predictor, max_instances=10, error_rate=0.0,
                                 click_predictor=tracker))
    phrases = [e["text_input"] for e in gold["images"]]
    with Image.open(world / name) as handle:
        image = handle.convert("RGB")
    proposals = predictor.propose(image, phrases, score_threshold=0.0, max_instances=10, dedupe_iou=0.7)
    drawn = refine_proposals(tracker, image, proposals, media_key=name, dedupe_iou=0.7)
    for phrase, proposal in zip(phrases, drawn):
        mv = [r["rles"][0] for r in rows if r["task"] == "mv" and r["phrase"] == phrase]
        assert mv == [i.rle for i in proposal.instances]
