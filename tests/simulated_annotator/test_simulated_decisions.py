"""The simulated annotator's correct answers on hand-made masks (no mistakes, no HTTP)."""
from __future__ import annotations

import pytest

from simulated_annotator import SimulatedAnnotator
from simulated_annotator.config import AnnotatorConfig
from simulated_annotator.decisions import answer_correction, answer_exhaustivity, answer_mask_verification, \
    answer_review
from tests.simulated_annotator.worlds import CROWD, RED_A, RED_B, box, task


def _pair(world, image_id):
    return world.by_image_id(image_id)


# ---------------------------------------------------------------- mask verification


def test_a_mask_matching_an_instance_is_accepted(world, exact):
    answer = answer_mask_verification(task("mask_verification", _pair(world, 1), mask=RED_B), world, exact)
    assert (answer.decision, answer.best_iou, answer.mistake) == ("accept", 1.0, False)


def test_a_sloppy_mask_below_accept_iou_is_rejected(world, exact):
    # 10x10 instance vs a 10x7 mask inside it: IoU 0.7 < 0.75.
    answer = answer_mask_verification(task("mask_verification", _pair(world, 1), mask=box(2, 2, 12, 9)),
                                      world, exact)
    assert answer.best_iou == pytest.approx(0.7)
    assert answer.decision == "reject"


def test_a_mask_just_above_accept_iou_is_accepted(world, exact):
    answer = answer_mask_verification(task("mask_verification", _pair(world, 1), mask=box(2, 2, 12, 10)),
                                      world, exact)
    assert answer.best_iou == pytest.approx(0.8)
    assert answer.decision == "accept"


def test_any_mask_on_a_negative_is_rejected(world, exact):
    for image_id in (2, 3):
        answer = answer_mask_verification(task("mask_verification", _pair(world, image_id), mask=RED_A),
                                          world, exact)
        assert (answer.decision, answer.best_iou) == ("reject", 0.0)


def test_mv_costs_the_time_model_per_mask(world, exact):
    answer = answer_mask_verification(task("mask_verification", _pair(world, 1), mask=RED_A), world, exact)
    assert answer.seconds == exact.time_model.mv_per_mask


# ---------------------------------------------------------------- exhaustivity verification


def test_every_instance_covered_is_exhaustive(world, exact):
    answer = answer_exhaustivity(task("exhaustivity_verification", _pair(world, 1), masks=[RED_A, RED_B]),
                                 world, exact)
    assert (answer.decision, answer.uncovered) == ("accept", 0)


def test_coverage_needs_iou_half_not_accept_iou(world, exact):
    # box(2, 2, 12, 8) has IoU 0.6 with RED_A: covers it for EV although MV would have rejected it.
    masks = [box(2, 2, 12, 8), RED_B]
    assert answer_exhaustivity(task("exhaustivity_verification", _pair(world, 1), masks=masks),
                               world, exact).decision == "accept"
    masks = [box(2, 2, 12, 6), RED_B]  # IoU 0.4
    assert answer_exhaustivity(task("exhaustivity_verification", _pair(world, 1), masks=masks),
                               world, exact).decision == "reject"


def test_a_missing_instance_is_rejected(world, exact):
    answer = answer_exhaustivity(task("exhaustivity_verification", _pair(world, 1), masks=[RED_A]), world, exact)
    assert (answer.decision, answer.uncovered) == ("reject", 1)


def test_a_missing_group_is_rejected_as_unseparated(world, exact):
    answer = answer_exhaustivity(task("exhaustivity_verification", _pair(world, 4), masks=[]), world, exact)
    assert answer.decision == "reject_unseparated"
    answer = answer_exhaustivity(task("exhaustivity_verification", _pair(world, 4), masks=[CROWD]), world, exact)
    assert answer.decision == "accept"


def test_a_negative_with_no_masks_is_accepted(world, exact):
    answer = answer_exhaustivity(task("exhaustivity_verification", _pair(world, 3), masks=[]), world, exact)
    assert answer.decision == "accept"
    assert answer.seconds == exact.time_model.ev_per_datapoint


def test_ev_judges_exhaustivity_only_so_a_wrong_accepted_mask_passes(world, exact):
    # A wrong mask on a negative is MV's error to catch; EV has nothing missing to report.
    answer = answer_exhaustivity(task("exhaustivity_verification", _pair(world, 2), masks=[RED_A]), world, exact)
    assert answer.decision == "accept"


# ---------------------------------------------------------------- correction


def test_correction_keeps_edits_adds_and_drops(world, exact):
    good = RED_A                    # IoU 1.0 with RED_A -> keep
    sloppy = box(20, 20, 30, 27)    # IoU 0.7 with RED_B -> edit to the true mask
    junk = box(32, 0, 40, 8)        # matches nothing -> dropped
    t = task("correction", _pair(world, 1), masks=[good, sloppy, junk])
    answer = answer_correction(t, world, exact)
    assert answer.outcome == "complete"
    assert answer.masks == [{"mask_id": 101}, {"mask_id": 102, "rle": RED_B, "iscrowd": False}]
    assert (answer.kept, answer.edited, answer.added, answer.deleted, answer.missed) == (1, 1, 0, 1, 0)
    tm = exact.time_model
    assert answer.seconds == pytest.approx(tm.correction_base + tm.correction_per_edited + tm.correction_per_deleted)


def test_correction_restores_a_good_rejected_mask_and_edits_a_near_miss_rather_than_drawing_them(world, exact):
    # RED_A was rejected by mistake; the near miss (IoU 0.7) was rejected rightly; the junk matches nothing.
    near_miss, junk = box(20, 20, 30, 27), box(32, 0, 40, 8)
    t = task("correction", _pair(world, 1), candidates=[junk, RED_A, near_miss])
    answer = answer_correction(t, world, exact)
    assert answer.masks == [{"mask_id": 202}, {"mask_id": 203, "rle": RED_B, "iscrowd": False}]
    assert (answer.kept, answer.restored, answer.edited, answer.added, answer.deleted) == (0, 1, 1, 0, 0)
    tm = exact.time_model
    assert answer.seconds == pytest.approx(tm.correction_base + tm.mv_per_mask + tm.correction_per_edited)
    drawn = answer_correction(task("correction", _pair(world, 1)), world, exact)
    assert drawn.seconds == pytest.approx(tm.correction_base + 2 * tm.correction_per_added)


def test_correction_keeps_an_accepted_mask_before_looking_at_the_rejected_ones(world, exact):
    t = task("correction", _pair(world, 1), masks=[box(2, 2, 12, 10)], candidates=[RED_A, box(20, 20, 29, 29)])
    answer = answer_correction(t, world, exact)
    assert answer.masks == [{"mask_id": 101}, {"mask_id": 202}]
    assert (answer.kept, answer.restored, answer.deleted) == (1, 1, 0)


def test_correction_adds_uncovered_instances_with_their_group_flag(world, exact):
    answer = answer_correction(task("correction", _pair(world, 4), masks=[]), world, exact)
    assert answer.masks == [{"rle": CROWD, "iscrowd": True}]
    assert answer.added == 1


def test_correction_matches_one_mask_to_one_instance(world, exact):
    # Two masks on the same instance: the better one is kept, the other deleted, the other instance added.
    t = task("correction", _pair(world, 1), masks=[box(2, 2, 12, 10), RED_A])
    answer = answer_correction(t, world, exact)
    assert answer.masks == [{"mask_id": 102}, {"rle": RED_B, "iscrowd": False}]
    assert (answer.kept, answer.added, answer.deleted) == (1, 1, 1)


def test_correction_of_a_negative_removes_every_mask(world, exact):
    answer = answer_correction(task("correction", _pair(world, 2), masks=[RED_A]), world, exact)
    assert (answer.outcome, answer.masks, answer.deleted) == ("complete", [], 1)


def test_correction_payload_is_the_api_body(world, exact):
    t = task("correction", _pair(world, 1), masks=[RED_A], revision=9)
    payload = answer_correction(t, world, exact).payload(t)
    assert payload["lease_token"] == 7
    assert payload["datapoint_revision"] == 9
    assert payload["outcome"] == "complete"
    assert set(payload) == {"lease_token", "datapoint_revision", "outcome", "masks", "reason", "seconds"}


# ---------------------------------------------------------------- lookup


def test_lookup_uses_the_platforms_phrase_normalisation(world, exact):
    t = task("exhaustivity_verification", _pair(world, 2), masks=[])
    t["datapoint"]["phrase"] = "blue square"  # the platform lower-cases "Blue Square"
    assert answer_exhaustivity(t, world, exact).unknown_pair is False


def test_lookup_falls_back_to_the_media_name(world, exact):
    t = task("mask_verification", _pair(world, 5), mask=box(5, 5, 15, 15))
    t["datapoint"]["media"]["sha256"] = "not-the-hash-we-computed"
    assert answer_mask_verification(t, world, exact).decision == "accept"


def test_a_pair_the_ground_truth_does_not_know_gets_unsure_answers(world, exact):
    p = _pair(world, 1)
    unknown = {"mask_verification": "reject", "exhaustivity_verification": "ungroundable"}
    for kind, expected in unknown.items():
        t = task(kind, p, mask=RED_A, masks=[RED_A])
        t["datapoint"]["phrase"] = "unicorn"
        answer = (answer_mask_verification if kind == "mask_verification" else answer_exhaustivity)(t, world, exact)
        assert (answer.decision, answer.unknown_pair, answer.mistake) == (expected, True, False)
    t = task("correction", p, masks=[RED_A])
    t["datapoint"]["phrase"] = "unicorn"
    assert answer_correction(t, world, exact).outcome == "reject_phrase"


def test_a_mask_of_the_wrong_size_is_refused(world, exact):
    with pytest.raises(ValueError, match="does not match the ground-truth image size"):
        answer_mask_verification(task("mask_verification", _pair(world, 1), mask=box(0, 0, 5, 5, size=50)),
                                 world, exact)


# ---------------------------------------------------------------- review of AI-accepted datapoints (Phase 2+)


def test_review_confirms_only_correct_and_exhaustive_results(world, exact):
    p = _pair(world, 1)
    assert answer_review(task("review", p, masks=[RED_A, RED_B]), world, exact).decision == "confirm"
    missing = answer_review(task("review", p, masks=[RED_A]), world, exact)
    assert (missing.decision, missing.uncovered, missing.wrong_masks) == ("reject", 1, 0)
    sloppy = answer_review(task("review", p, masks=[RED_A, box(20, 20, 30, 27)]), world, exact)  # IoU 0.7
    assert (sloppy.decision, sloppy.wrong_masks) == ("reject", 1)
    assert answer_review(task("review", _pair(world, 2)), world, exact).decision == "confirm"  # a true negative
    assert answer_review(task("review", _pair(world, 2), masks=[RED_A]), world, exact).decision == "reject"


def test_review_costs_an_ev_plus_an_mv_per_mask_and_errs_like_ev(world, exact):
    answer = answer_review(task("review", _pair(world, 1), masks=[RED_A, RED_B]), world, exact)
    assert answer.seconds == exact.time_model.ev_per_datapoint + 2 * exact.time_model.mv_per_mask
    always_wrong = AnnotatorConfig(error_rate_mv=0.0, error_rate_ev=1.0, error_rate_correction=0.0)
    flipped = answer_review(task("review", _pair(world, 1), masks=[RED_A, RED_B]), world, always_wrong)
    assert (flipped.decision, flipped.correct, flipped.mistake) == ("reject", "confirm", True)


# ---------------------------------------------------------------- the annotator's public methods


def test_annotator_decisions_need_no_server(world, exact):
    annotator = SimulatedAnnotator("http://127.0.0.1:9", "token", 1, world, exact, name="sim-test")
    p = _pair(world, 1)
    assert annotator.decide_mask_verification(task("mask_verification", p, mask=RED_A)) == (
        "accept", exact.time_model.mv_per_mask)
    assert annotator.decide_exhaustivity(task("exhaustivity_verification", p, masks=[RED_A]))[0] == "reject"
    payload = annotator.decide_correction(task("correction", p, masks=[RED_A]))
    assert payload["masks"] == [{"mask_id": 101}, {"rle": RED_B, "iscrowd": False}]
