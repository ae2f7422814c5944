"""Command line: run SIMULATED annotators against a platform, or count escaped errors in a snapshot.

    python -m simulated_annotator run --base-url http://127.0.0.1:8000 --project 1 --gold DIR/gold.json \
        --token KEY1 --token KEY2 [--kinds mask_verification,exhaustivity_verification,correction] [--json out.json]
    python -m simulated_annotator escaped --gold DIR/gold.json --snapshot snapshot.json
    python -m simulated_annotator calibrate DIR/gold.json [--proposals results.json]

(``platform/`` and the repository root must be on PYTHONPATH.)
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from simulated_annotator import calibration
from simulated_annotator.annotator import SIMULATED_LABEL, TASK_KINDS, SimulatedAnnotator, run_team
from simulated_annotator.config import AnnotatorConfig
from simulated_annotator.ground_truth import GroundTruth
from simulated_annotator.report import escaped_errors, seconds_per_datapoint


def _run(args) -> int:
    ground_truth = GroundTruth.from_gold(args.gold)
    config = AnnotatorConfig(error_rate_mv=args.error_rate, error_rate_ev=args.error_rate,
                             error_rate_correction=args.error_rate, seed=args.seed)
    kinds = tuple(args.kinds.split(",")) if args.kinds else TASK_KINDS
    team = [SimulatedAnnotator(args.base_url, token, args.project, ground_truth, config, name=f"sim-{i + 1}")
            for i, token in enumerate(args.token)]
    print(config.describe())
    stats = run_team(team, kinds=kinds, idle_rounds=args.idle_rounds, idle_sleep=args.idle_sleep)
    print(stats.summary())
    timing = seconds_per_datapoint(stats.log, ground_truth)
    print(timing.summary())
    if args.json:
        args.json.write_text(json.dumps({"stats": stats.as_dict(), "seconds_per_datapoint": timing.as_dict(),
                                         "config": config.as_dict()}, indent=2, default=str))
    return 0


def _escaped(args) -> int:
    result = escaped_errors(args.snapshot, GroundTruth.from_gold(args.gold))
    print(result.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulated_annotator", description=SIMULATED_LABEL)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="answer tasks through the API until every queue stays empty")
    run.add_argument("--base-url", required=True)
    run.add_argument("--project", type=int, required=True)
    run.add_argument("--gold", type=Path, required=True)
    run.add_argument("--token", action="append", required=True, help="one API token per simulated annotator")
    run.add_argument("--kinds", help="comma-separated task kinds (default: all)")
    run.add_argument("--error-rate", type=float, default=0.03)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--idle-rounds", type=int, default=5)
    run.add_argument("--idle-sleep", type=float, default=1.0)
    run.add_argument("--json", type=Path)
    escaped = sub.add_parser("escaped", help="escaped errors of an SA-Co snapshot against the ground truth")
    escaped.add_argument("--gold", type=Path, required=True)
    escaped.add_argument("--snapshot", type=Path, required=True)
    sub.add_parser("calibrate", help="the time-model calibration check", add_help=False)
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "calibrate":
        return calibration.main(rest)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    return _run(args) if args.command == "run" else _escaped(args)


if __name__ == "__main__":
    sys.exit(main())
