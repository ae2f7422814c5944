"""Smoke checks of the benchmarks: `python -m tests.bench.bench_lease --quick` builds a database, serves the API with
gunicorn, leases over HTTP in every phase and finds no duplicate lease (about a minute); the verifier benchmark
scores a few masks at batch sizes 1, 8 and 32 with the committed tiny verifier (seconds)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(tmp_path, module: str, *args: str, timeout: int = 600) -> str:
    """``python -m tests.bench.<module> ARGS`` in its own process (benchmarks set Django up for their own database),
    its reports into ``tmp_path``; its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    env["BENCH_RESULTS_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-m", f"tests.bench.{module}", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.pg
@pytest.mark.e2e
@pytest.mark.slow
def test_quick_lease_benchmark_leases_over_http_without_duplicates(tmp_path):
    run_benchmark(tmp_path, "bench_lease", "--quick", timeout=300)
    report = json.loads((tmp_path / "lease-quick.json").read_text())
    assert report["duplicate_leases"] == 0
    assert report["errors"] == 0
    check = report["duplicate_checks"]["10k"]
    assert check["leases_answered"] == check["leased_rows_in_db"] > 0
    for key in ("lease_p50_ms_10k_1client", "lease_p95_ms_10k_1client", "lease_p50_ms_10k_50annotators",
                "lease_p95_ms_10k_50annotators", "lease_per_s_10k_saturated"):
        assert report[key] > 0, key
    assert report["setup"]["machine_cores"] == os.cpu_count()


def test_make_bench_runs_every_benchmark_module_in_its_own_process(capfd):
    from tests.bench.__main__ import BENCHMARKS, main

    assert main(["--help"]) == 0  # each module parses its arguments in a fresh interpreter
    printed = capfd.readouterr().out
    assert printed.count("usage:") == len(BENCHMARKS) == 5


def test_verifier_benchmark_reports_throughput_per_batch_size_with_rendering_apart(tmp_path, monkeypatch):
    import torch

    from tests.bench import bench_verifier
    from tests.bench.__main__ import BENCHMARKS

    assert "bench_verifier" in BENCHMARKS  # make bench runs it
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(tmp_path))
    threads = torch.get_num_threads()
    try:
        assert bench_verifier.main(["--quick", "--masks", "9", "--device", "cpu", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads((tmp_path / "verifier-quick.json").read_text())
    setup = report["setup"]
    assert setup["device"] == "cpu" and setup["masks"] == 9 and setup["batch_sizes"] == [1, 8, 32]
    assert setup["verifier"].endswith("checkpoints/verifier-tiny") and setup["model_version"].startswith("verifier-")
    for b in (1, 8, 32):
        for key in (f"verifier_mv_masks_per_s_batch{b}", f"verifier_mv_end_to_end_masks_per_s_batch{b}",
                    f"verifier_mv_preprocess_ms_per_mask_batch{b}"):
            assert report[key] > 0, key
        assert report[f"verifier_mv_model_ms_per_mask_batch{b}"] == \
            pytest.approx(1000 / report[f"verifier_mv_masks_per_s_batch{b}"])
    assert report["verifier_mv_batch32_over_batch1_ratio"] == pytest.approx(
        report["verifier_mv_masks_per_s_batch32"] / report["verifier_mv_masks_per_s_batch1"])
    assert report["verifier_mv_render_ms_per_mask"] > 0
    assert report["verifier_mv_max_logit_diff_across_batches"] < 1e-4  # batching does not change the answers
    parts = {(row["part"], row["batch"]) for row in report["table"]}
    assert ("render", None) in parts and ("model (preprocess + forward)", 32) in parts


def test_verifier_items_are_real_masks_with_phrases_of_their_scene():
    from model import rle
    from tests.bench.bench_verifier import mv_items

    items = mv_items(12)
    assert len(items) == 12
    for item in items:
        assert rle.decode(item.rle).any() and rle.decode(item.rle).shape == (item.image.height, item.image.width)
        assert item.phrase.strip()


def _routing_report(tmp_path, *args: str) -> dict:
    """Run the routing benchmark in its own process and read its JSON."""
    assert "SIMULATED" in run_benchmark(tmp_path, "bench_routing", *args, "--name", "routing-smoke")
    return json.loads((tmp_path / "routing-smoke.json").read_text())


def _check_arm_accounting(arm: dict, time_model: dict) -> None:
    assert arm["accepted_datapoints"] + arm["rejected_datapoints"] + arm["failed_datapoints"] == arm["datapoints"]
    assert arm["accepted_positive"] + arm["accepted_negative"] == arm["accepted_datapoints"]
    assert arm["annotator_conflicts"] == 0 and arm["unknown_pairs"] == 0
    assert arm["human_seconds"] == pytest.approx(sum(arm["human_seconds_by_kind"].values()))
    # Every accepted mask is wrong (escaped), matched one-to-one to a true instance, or a duplicate of one.
    assert arm["escaped"]["wrong_masks"] + arm["matched_masks"] + arm["duplicate_masks"] == arm["accepted_masks"]
    assert arm["masks_per_human_hour"] == pytest.approx(arm["accepted_masks"] / (arm["human_seconds"] / 3600))
    assert arm["escaped_error_rate"] == pytest.approx(
        arm["escaped"]["datapoints_with_any_error"] / arm["accepted_datapoints"])
    tasks = arm["human_tasks"]
    assert arm["human_seconds_by_kind"].get("mv", 0) == pytest.approx(
        tasks.get("mask_verification", 0) * time_model["mv_per_mask"])
    assert arm["human_seconds_by_kind"].get("ev", 0) == pytest.approx(
        tasks.get("exhaustivity_verification", 0) * time_model["ev_per_datapoint"])
    # Every correction's seconds are the time model's charge for what it did (no jitter in the benchmark).
    actions, outcomes = arm["correction_actions"], arm["correction_outcomes"]
    assert sum(outcomes.values()) == tasks.get("correction", 0)
    assert arm["human_seconds_by_kind"].get("correction", 0) == pytest.approx(
        outcomes.get("complete", 0) * time_model["correction_base"] + actions["added"] * time_model[
            "correction_per_added"] + actions["edited"] * time_model["correction_per_edited"]
        + actions["deleted"] * time_model["correction_per_deleted"] + actions["restored"] * time_model["mv_per_mask"]
        + (outcomes.get("reject_phrase", 0) + outcomes.get("cannot_complete", 0)) * time_model["reject_phrase"])


@pytest.mark.pg
@pytest.mark.e2e
@pytest.mark.slow
def test_quick_routing_benchmark_runs_both_phases_on_the_same_datapoints(tmp_path):
    from tests.bench.__main__ import BENCHMARKS

    assert "bench_routing" in BENCHMARKS  # make bench runs it
    report = _routing_report(tmp_path, "--quick")
    for key in ("phase2_over_phase1_masks_per_human_hour", "escaped_error_rate_phase1", "escaped_error_rate_phase2",
                "human_share_phase2", "ai_precision_audited", "masks_per_human_hour_phase1",
                "masks_per_human_hour_phase2", "human_seconds_per_accepted_mask_phase1",
                "human_seconds_per_accepted_mask_phase2", "goal_met", "arms", "config"):
        assert key in report, key
    assert report["simulated"] is True
    config = report["config"]
    assert config["images"] == 4 and config["database"] == "postgresql" and config["code_version"]
    assert config["sam3"]["model_version"] and config["verifier"]["model_version"].startswith("verifier-")
    phase1, phase2 = report["arms"]["phase1"], report["arms"]["phase2"]
    assert phase1["datapoints"] == phase2["datapoints"] == report["datapoints"] > 20  # the same world in both arms
    assert phase1["proposed_masks"] == phase2["proposed_masks"] > 0  # and the same SAM 3 proposals
    # Phase 1: a human EV on every datapoint, an MV on every proposed mask, no AI, no review.
    assert report["human_share_phase1"] == phase1["human_share"] == 1.0
    assert phase1["human_tasks"]["exhaustivity_verification"] == phase1["datapoints"]
    assert phase1["human_tasks"]["mask_verification"] == phase1["proposed_masks"]
    assert "review" not in phase1["human_tasks"] and "routing" not in phase1
    for arm in (phase1, phase2):
        _check_arm_accounting(arm, config["annotator"]["time_model"])
    # Phase 2: the AI routed every datapoint before any human saw it; human MV/EV only where it sent a human check,
    # which ends with a human EV or with the verifier's EV on the masks the human accepted.
    routing, after_check = phase2["routing"], phase2["ai_exhaustivity_after_check"]
    assert after_check["auto_accepted"] <= after_check["asked"] <= routing["to_human_check"]
    # Each EV the verifier left to a human after a check is counted under the claim whose threshold it missed.
    left = after_check["left_to_a_human_by_claim"]
    assert sum(left.values()) == after_check["asked"] - after_check["auto_accepted"]
    claims = {"ev", "ev_zero_after_check", "ev_unboxed_explained", "ev_zero_after_check_unboxed_explained"}
    assert set(left) <= claims | {"other"}
    assert set(after_check["not_asked_by_reason"]) <= claims | {"failure signs", "other"}
    assert phase2["human_tasks"].get("exhaustivity_verification", 0) + after_check["auto_accepted"] >= \
        routing["to_human_check"]
    if not routing["to_human_check"]:
        assert not {"mask_verification", "exhaustivity_verification"} & set(phase2["human_tasks"])
    assert routing["auto_accepted"] + routing["to_correction"] + routing["to_human_check"] + routing["taken_out"] + \
        routing["failed"] == phase2["datapoints"]
    assert report["phase2_over_phase1_masks_per_human_hour"] == pytest.approx(
        phase2["masks_per_human_hour"] / phase1["masks_per_human_hour"])
    if not any((config["verifier"].get("thresholds") or {}).values()):
        # An uncalibrated verifier auto-accepts nothing: every datapoint reaches a human.
        assert routing["auto_accepted"] == 0 and routing["to_correction"] + routing["to_human_check"] == \
            phase2["datapoints"]
        assert report["human_share_phase2"] == 1.0 and report["ai_precision_audited"] is None


@pytest.mark.pg
@pytest.mark.e2e
@pytest.mark.slow
def test_routing_benchmark_audits_what_a_permissive_verifier_accepts(tmp_path):
    """A copy of the tiny verifier with thresholds at 0 (as if calibrated) and every auto-accepted item audited:
    exercises auto-accept, human review and the audited precision end to end."""
    import shutil

    folder = tmp_path / "verifier-permissive"
    shutil.copytree(ROOT / "checkpoints" / "verifier-tiny", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(thresholds={"mv": 0.0, "ev": 0.0}, target_precision=0.98, model_version="verifier-permissive")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    report = _routing_report(tmp_path, "--images", "3", "--verifier", str(folder), "--audit-rate", "1.0")
    assert report["config"]["verifier"]["model_version"] == "verifier-permissive"
    phase2 = report["arms"]["phase2"]
    _check_arm_accounting(phase2, report["config"]["annotator"]["time_model"])
    routing = phase2["routing"]
    assert routing["auto_accepted"] > 0 == routing["failed"]
    # audit_rate 1: every auto-accepted datapoint is reviewed (also those the verifier's EV settled after a human
    # check), so every datapoint reaches a human.
    auto_accepted = routing["auto_accepted"] + phase2["ai_exhaustivity_after_check"]["auto_accepted"]
    assert phase2["audited"] == auto_accepted == phase2["human_tasks"]["review"]
    assert report["human_share_phase2"] == 1.0
    assert report["ai_precision_audited"] == pytest.approx(phase2["audit_confirmed"] / phase2["audited"])
    assert 0.0 <= report["ai_precision_audited"] <= 1.0 and 0.0 <= report["ai_precision_truth"] <= 1.0
    # A correction follows each item routed straight to correction, each rejected review and each human check
    # whose human found the set incomplete.
    rejected_reviews = phase2["audited"] - phase2["audit_confirmed"]
    corrections = phase2["human_tasks"].get("correction", 0)
    assert routing["to_correction"] + rejected_reviews <= corrections
    assert corrections <= routing["to_correction"] + rejected_reviews + routing["to_human_check"]


@pytest.mark.pg
@pytest.mark.e2e
@pytest.mark.slow
def test_one_world_pooled_is_that_worlds_own_report(tmp_path):
    run_benchmark(tmp_path, "routing_worlds", "--quick", "--seeds", "1", "--jobs", "1")
    pooled = json.loads((tmp_path / "routing-worlds-quick.json").read_text())
    alone = json.loads((tmp_path / "routing-worlds-quick-world1.json").read_text())
    assert pooled["simulated"] is True and pooled["config"]["seeds"] == [1] and alone["config"]["world_seed"] == 1
    for key in ("phase2_over_phase1_masks_per_human_hour", "phase2_over_phase1_matched_masks_per_human_hour",
                "escaped_error_rate_phase1", "escaped_error_rate_phase2", "human_share_phase2", "ai_precision_truth",
                "human_seconds_phase1", "human_seconds_phase2", "accepted_masks_phase2", "goal_met"):
        assert pooled[key] == pytest.approx(alone[key]), key
    assert pooled["worlds_meeting_goal"] == int(alone["goal_met"])
