"""The time model's arithmetic, and the calibration replay's accounting on hand-made worlds."""
from __future__ import annotations

import pytest

from simulated_annotator.calibration import check_calibration, load_proposals, replay_all_human_phase1
from simulated_annotator.config import AnnotatorConfig
from simulated_annotator.ground_truth import GroundTruth
from simulated_annotator.report import seconds_per_datapoint
from simulated_annotator.time_model import CALIBRATION_TOLERANCE, PAPER_ALL_HUMAN_SECONDS, TimeModel
from tests.simulated_annotator.worlds import box, pair

EXACT = AnnotatorConfig(error_rate_mv=0.0, error_rate_ev=0.0, error_rate_correction=0.0)


def test_default_constants():
    tm = TimeModel()
    assert (tm.mv_per_mask, tm.ev_per_datapoint, tm.correction_base, tm.correction_per_added,
            tm.correction_per_edited, tm.correction_per_deleted, tm.reject_phrase) == (2, 24, 120, 40, 20, 2, 24)


def test_paper_like_reference_scenario_reproduces_the_paper():
    # Negative: 3 spurious proposals + EV = 30 s. Positive: 4 MV + EV + correction adding one = 192 s.
    reference = TimeModel().reference_scenario()
    assert reference == {"negative": 30.0, "positive": 192.0}
    for which, seconds in reference.items():
        assert abs(seconds / PAPER_ALL_HUMAN_SECONDS[which] - 1) <= CALIBRATION_TOLERANCE


def test_correction_cost_is_base_plus_per_instance_actions():
    tm = TimeModel()
    assert tm.correction(added=2, edited=1, deleted=3) == 120 + 2 * 40 + 20 + 3 * 2
    assert tm.correction(added=0, edited=0, deleted=0) == tm.correction_base
    assert tm.correction(added=0, edited=0, deleted=0, restored=2) == tm.correction_base + 2 * tm.mv_per_mask


def test_without_jitter_every_action_costs_its_constant():
    tm = TimeModel()
    assert tm.mask_verification(("a",)) == tm.mask_verification(("b",)) == 2.0
    assert tm.exhaustivity_verification() == 24.0
    assert tm.phrase_rejection() == 24.0


def test_jitter_is_deterministic_and_keeps_the_mean():
    tm = TimeModel(jitter_sigma=0.5, seed=3)
    samples = [tm.exhaustivity_verification(("item", i)) for i in range(20000)]
    assert samples[:50] == [tm.exhaustivity_verification(("item", i)) for i in range(50)]
    assert len(set(samples)) > 19000
    assert sum(samples) / len(samples) == pytest.approx(24.0, rel=0.02)
    assert TimeModel(jitter_sigma=0.5, seed=4).exhaustivity_verification(("item", 0)) != samples[0]


def test_negative_constants_are_refused():
    with pytest.raises(ValueError, match="mv_per_mask"):
        TimeModel(mv_per_mask=-1)


def test_the_model_prints_every_constant():
    text = TimeModel().describe()
    for fragment in ("MV 2/mask", "EV 24/datapoint", "correction 120/job", "40/added", "20/edited", "2/deleted",
                     "reject phrase 24"):
        assert fragment in text


# ---------------------------------------------------------------- the replay's accounting


def _world() -> GroundTruth:
    return GroundTruth([
        pair(1, "square", [box(0, 0, 10, 10)]),
        pair(2, "circle", []),
        pair(3, "star", [box(0, 0, 10, 10), box(20, 20, 30, 30)]),
        pair(4, "dog", []),
    ])


def test_replay_without_proposals_is_ev_plus_correction():
    world = _world()
    records = replay_all_human_phase1(world, {}, EXACT)
    assert [(r.datapoint_id, r.kind) for r in records] == [
        (1, "exhaustivity_verification"), (1, "correction"),
        (2, "exhaustivity_verification"),
        (3, "exhaustivity_verification"), (3, "correction"),
        (4, "exhaustivity_verification"),
    ]
    timing = seconds_per_datapoint(records, world)
    assert timing.negative_mean == 24
    assert timing.positive_mean == 24 + 120 + 40 * 1.5  # one and two instances added
    assert timing.positive_by_kind == {"mask_verification": 0, "exhaustivity_verification": 24,
                                       "correction": 120 + 40 * 1.5}


def test_replay_counts_every_proposal_verified():
    world = _world()
    proposals = {
        1: [box(0, 0, 10, 10), box(30, 30, 38, 38)],  # a right mask and a spurious one -> EV accepts
        2: [box(5, 5, 15, 15)],                       # spurious on a negative -> rejected, EV accepts
        3: [box(0, 0, 10, 8)],                        # IoU 0.8: accepted and kept; one instance to add
    }
    records = replay_all_human_phase1(world, proposals, EXACT)
    per_dp = {}
    for r in records:
        per_dp[r.datapoint_id] = per_dp.get(r.datapoint_id, 0) + r.seconds
    assert per_dp == {1: 2 * 2 + 24, 2: 2 + 24, 3: 2 + 24 + 120 + 40, 4: 24}


def test_load_proposals_filters_and_caps_like_the_platform():
    results = [{"image_id": 1, "segmentation": box(0, 0, 5, 5), "score": s} for s in (0.4, 0.9, 0.6, 0.7)]
    kept = load_proposals(results, score_threshold=0.5, max_instances=2)
    assert len(kept[1]) == 2


def test_calibration_report_flags_a_world_outside_tolerance():
    world = _world()
    spurious = {2: [box(5, 5, 15, 15)], 4: [box(5, 5, 15, 15)]}
    report = check_calibration(replay_all_human_phase1(world, spurious, EXACT), world)
    # Negative 2 + 24 = 26 s (-13%), positive 24 + 120 + 60 = 204 s (-1.4%): both within 20%.
    assert (report.measured.negative_mean, report.measured.positive_mean) == (26, 204)
    assert report.ok
    assert "SIMULATED" in report.summary()
    slow = TimeModel(ev_per_datapoint=60)
    report = check_calibration(replay_all_human_phase1(world, {}, AnnotatorConfig(error_rate_mv=0, error_rate_ev=0,
                               error_rate_correction=0, time_model=slow)), world, time_model=slow)
    assert not report.ok
    assert "OUTSIDE" in report.summary()
