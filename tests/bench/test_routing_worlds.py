"""The multi-world routing report adds the worlds' counts up before dividing (a ratio of sums, not a mean of ratios)."""
import pytest

from tests.bench.routing_worlds import main, pool_worlds


def arm(*, masks: int, seconds: float, escaped: int, datapoints: int = 100, phase2: bool = False) -> dict:
    out = {"datapoints": datapoints, "datapoints_reaching_a_human": datapoints if not phase2 else datapoints // 2,
           "accepted_datapoints": datapoints, "accepted_masks": masks, "matched_masks": masks - escaped,
           "duplicate_masks": 0, "human_seconds": seconds, "escaped": {"datapoints_with_any_error": escaped},
           "correction_actions": {"restored": 1, "added": 2}}
    if phase2:
        out.update(routing={"auto_accepted": 40, "auto_accepted_right_by_truth": 39},
                   ai_exhaustivity_after_check={"auto_accepted": 30}, audited=4, audit_confirmed=4)
    return out


def world(p1: dict, p2: dict) -> dict:
    speedup = (p2["accepted_masks"] / p2["human_seconds"]) / (p1["accepted_masks"] / p1["human_seconds"])
    escaped1 = p1["escaped"]["datapoints_with_any_error"] / p1["accepted_datapoints"]
    escaped2 = p2["escaped"]["datapoints_with_any_error"] / p2["accepted_datapoints"]
    return {"arms": {"phase1": p1, "phase2": p2}, "datapoints": p1["datapoints"],
            "phase2_over_phase1_masks_per_human_hour": speedup, "phase2_over_phase1_matched_masks_per_human_hour": 0,
            "human_seconds_phase1": p1["human_seconds"], "human_seconds_phase2": p2["human_seconds"],
            "escaped_error_rate_phase1": escaped1, "escaped_error_rate_phase2": escaped2,
            "goal_met": speedup >= 2 and escaped2 <= escaped1}


def test_worlds_pool_by_adding_counts_and_the_goal_is_judged_on_the_pool():
    # World 0 meets the goal by far (3x); world 1 misses it (1.5x) and lets one more error escape than Phase 1.
    reports = {0: world(arm(masks=100, seconds=6000, escaped=4), arm(masks=100, seconds=2000, escaped=1, phase2=True)),
               1: world(arm(masks=100, seconds=6000, escaped=2), arm(masks=100, seconds=4000, escaped=3, phase2=True))}
    figures, rows = pool_worlds(reports)
    # 200 masks in 12,000 s against 200 in 6,000 s: 2x (the mean of the worlds' ratios would say 2.25x).
    assert figures["phase2_over_phase1_masks_per_human_hour"] == pytest.approx(2.0)
    assert figures["escaped_error_rate_phase1"] == pytest.approx(6 / 200)
    assert figures["escaped_error_rate_phase2"] == pytest.approx(4 / 200)
    assert (figures["goal_met"], figures["worlds"], figures["worlds_meeting_goal"]) == (True, 2, 1)
    assert figures["human_share_phase2"] == pytest.approx(0.5) and figures["human_share_phase1"] == 1.0
    assert figures["ai_precision_truth"] == pytest.approx(78 / 80) and figures["ai_precision_audited"] == 1.0
    assert figures["masks_per_human_hour_phase2"] == pytest.approx(200 / (6000 / 3600))
    assert figures["arms"]["phase1"]["correction_actions"] == {"restored": 2, "added": 4}
    assert [row["world"] for row in rows] == ["seed 0", "seed 1", "pooled"]
    assert [row["goal"] for row in rows] == ["met", "not met", "met"]


def test_worlds_report_refuses_seeds_that_are_not_numbers():
    with pytest.raises(SystemExit):
        main(["--seeds", "0,one"])

