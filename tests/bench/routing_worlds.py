"""Benchmark: the routing benchmark on several synthetic worlds, pooled into one report.

    python -m tests.bench.routing_worlds                          # worlds 0, 1, 2, 3, 4, 10; two at a time
    python -m tests.bench.routing_worlds --seeds 0,1 --jobs 1 --quick [any bench_routing option]

One 24-scene world has about 165 datapoints per arm and a dozen correction jobs, so one correction more or less moves
Phase 2's human seconds by 5% and its ratio to Phase 1 with it; the escaped-error rates rest on a handful of
datapoints. Each world runs as ``python -m tests.bench.bench_routing --seed S`` in its own process (its own
database; report ``routing-worlds-world<S>.json``), then the arms' counts are added up: masks per human-hour is all
accepted masks over all human seconds, the escaped-error rate all accepted datapoints with an error over all
accepted datapoints. Writes bench-results/routing-worlds.json (``-quick`` with --quick) with the same keys as
routing.json, pooled, and one row per world. Everything human in it is SIMULATED (docs/simulated-annotator.md).

Worlds: seed 0 is the routing benchmark's default, 1 and 2 its earlier extra worlds, 3, 4 and 10 worlds no training
or calibration used (the verifier is calibrated on worlds 5, 6 and 11, validated on 12; SAM 3 is evaluated on 8).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.bench.bench_routing import headline_figures, ratio
from tests.bench.report import git_sha, results_dir, write_report

ROOT = Path(__file__).resolve().parents[2]
NAME = "routing-worlds"
DEFAULT_SEEDS = "0,1,2,3,4,10"
# Counts each arm reports that add up over worlds.
SUMMED = ("datapoints", "datapoints_reaching_a_human", "accepted_datapoints", "accepted_masks", "matched_masks",
          "duplicate_masks", "human_seconds")


def pool_arm(arms: list[dict]) -> dict:
    """One arm's counts over worlds and the rates computed from the sums (not averaged over worlds), in the shape of
    one world's arm as far as ``bench_routing.headline_figures`` reads it."""
    total = {key: sum(arm[key] for arm in arms) for key in SUMMED}
    total["escaped_datapoints"] = sum(arm["escaped"]["datapoints_with_any_error"] for arm in arms)
    total["correction_actions"] = {action: sum(arm["correction_actions"][action] for arm in arms)
                                   for action in arms[0]["correction_actions"]}
    hours = total["human_seconds"] / 3600
    total.update(
        human_share=ratio(total["datapoints_reaching_a_human"], total["datapoints"]),
        masks_per_human_hour=ratio(total["accepted_masks"], hours),
        matched_masks_per_human_hour=ratio(total["matched_masks"], hours),
        human_seconds_per_accepted_mask=ratio(total["human_seconds"], total["accepted_masks"]),
        escaped_error_rate=ratio(total["escaped_datapoints"], total["accepted_datapoints"]) or 0.0,
    )
    if "routing" in arms[0]:  # Phase 2+
        auto = sum(arm["routing"]["auto_accepted"] for arm in arms)
        right = sum(arm["routing"]["auto_accepted_right_by_truth"] for arm in arms)
        audited = sum(arm["audited"] for arm in arms)
        total.update(
            routing={"auto_accepted": auto, "auto_accepted_right_by_truth": right,
                     "ai_precision_truth": ratio(right, auto)},
            ai_exhaustivity_after_check={"auto_accepted": sum(arm["ai_exhaustivity_after_check"]["auto_accepted"]
                                                              for arm in arms)},
            audited=audited, ai_precision_audited=ratio(sum(arm["audit_confirmed"] for arm in arms), audited))
    return total


def pool_worlds(reports: dict[int, dict]) -> tuple[dict, list[dict]]:
    """Pooled figures (routing.json's keys) and a table row per world and for the pool, from the per-world
    routing reports by seed."""
    phase1 = pool_arm([r["arms"]["phase1"] for r in reports.values()])
    phase2 = pool_arm([r["arms"]["phase2"] for r in reports.values()])
    figures = {
        **headline_figures(phase1, phase2),
        "escaped_datapoints_phase1": phase1["escaped_datapoints"],
        "escaped_datapoints_phase2": phase2["escaped_datapoints"],
        "worlds": len(reports),
        "worlds_meeting_goal": sum(bool(r["goal_met"]) for r in reports.values()),
        "arms": {"phase1": phase1, "phase2": phase2},
    }
    rows = [{"world": f"seed {seed}", "datapoints": r["datapoints"],
             "P2/P1 masks/human-h": r["phase2_over_phase1_masks_per_human_hour"],
             "matched": r["phase2_over_phase1_matched_masks_per_human_hour"],
             "human s P1": r["human_seconds_phase1"], "human s P2": r["human_seconds_phase2"],
             "escaped P1": r["escaped_error_rate_phase1"], "escaped P2": r["escaped_error_rate_phase2"],
             "goal": "met" if r["goal_met"] else "not met"} for seed, r in sorted(reports.items())]
    rows.append({"world": "pooled", "datapoints": figures["datapoints"],
                 "P2/P1 masks/human-h": figures["phase2_over_phase1_masks_per_human_hour"],
                 "matched": figures["phase2_over_phase1_matched_masks_per_human_hour"],
                 "human s P1": phase1["human_seconds"], "human s P2": phase2["human_seconds"],
                 "escaped P1": phase1["escaped_error_rate"], "escaped P2": phase2["escaped_error_rate"],
                 "goal": "met" if figures["goal_met"] else "not met"})
    return figures, rows


def run_world(seed: int, name: str, passthrough: list[str]) -> dict:
    """``bench_routing`` on one world in its own process; its report."""
    world_name = f"{name}-world{seed}"
    out = subprocess.run([sys.executable, "-m", "tests.bench.bench_routing", *passthrough, "--seed", str(seed),
                          "--name", world_name], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"world {seed}: bench_routing exited with {out.returncode}:\n{out.stderr[-3000:]}")
    report = json.loads((results_dir() / f"{world_name}.json").read_text())
    print(f"world {seed}: {report['phase2_over_phase1_masks_per_human_hour']:.2f}x, escaped "
          f"{report['escaped_error_rate_phase1']:.3f} / {report['escaped_error_rate_phase2']:.3f}", flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=DEFAULT_SEEDS,
                        help=f"world seeds, comma-separated (default {DEFAULT_SEEDS})")
    parser.add_argument("--jobs", type=int, default=2, help="worlds run at once (default 2: one per core here)")
    parser.add_argument("--quick", action="store_true", help="4 images per world (a smoke run)")
    parser.add_argument("--name", default=None, help="report name (default routing-worlds[-quick])")
    args, passthrough = parser.parse_known_args(argv)  # the rest goes to every bench_routing run
    try:
        seeds = sorted({int(s) for s in args.seeds.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--seeds must be integers separated by commas, got {args.seeds!r}")
    if not seeds or args.jobs < 1:
        parser.error("give at least one seed and --jobs >= 1")
    name = args.name or (NAME + ("-quick" if args.quick else ""))
    passthrough = passthrough + (["--quick"] if args.quick else [])
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        reports = dict(zip(seeds, pool.map(lambda seed: run_world(seed, name, passthrough), seeds)))
    figures, rows = pool_worlds(reports)
    first = reports[seeds[0]]
    figures.update(simulated=True, config={
        "seeds": seeds, "bench_routing_arguments": passthrough, "images_per_world": first["config"]["images"],
        "sam3": first["config"]["sam3"], "verifier": first["config"]["verifier"],
        "annotator_description": first["config"]["annotator_description"], "code_version": git_sha(),
        "world_reports": [f"{name}-world{seed}.json" for seed in seeds], "jobs": args.jobs,
        "machine_cores": os.cpu_count()})
    notes = [
        "SIMULATED annotator (test instrument; not human data): human seconds come from its time model, errors from "
        "its seeded error model",
        first["config"]["annotator_description"].replace("\n", "; ") + " (each world's annotators are seeded with "
        "its world's seed)",
        f"{len(seeds)} worlds of {first['config']['images']} synthetic scenes (seeds {', '.join(map(str, seeds))}), "
        f"{figures['datapoints']} datapoints per arm in all; each world as bench_routing reports it, pooled by adding "
        "up the arms' counts",
        f"goal (>= 2x masks per human-hour at an escaped-error rate <= Phase 1's): "
        f"{'met' if figures['goal_met'] else 'NOT met'} pooled; met in {figures['worlds_meeting_goal']} of "
        f"{len(seeds)} worlds alone",
    ]
    write_report(name, figures, table_rows=rows, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
