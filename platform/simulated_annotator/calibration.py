"""The time model's calibration check: replay the all-human Phase-1 engine offline and measure it.

The replay follows the platform's Phase-1 routing (dataengine.annotation.services): one MV task per proposed
mask, then one EV task on the accepted masks, then a correction when EV says "reject" or "reject but
unseparated". It answers with the same decision functions as the live annotator and measures with the same
accounting (report.seconds_per_datapoint) as a live run, so the check runs the real arithmetic on the
synthetic world's actual mix and on the proposer's actual output, instead of assuming either.

Proposals come in COCO results format keyed by gold.json's ``images[].id``
(``[{"image_id", "segmentation": RLE, "score"}]``) and are kept as the platform keeps them (score at or above
the project's ``score_threshold``, at most ``max_instances`` per datapoint, highest scores first). The same
check runs on a live run's log: ``check_calibration(stats.log, ground_truth)``.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from simulated_annotator import decisions
from simulated_annotator.annotator import (
    CORRECTION,
    EXHAUSTIVITY_VERIFICATION,
    MASK_VERIFICATION,
    SIMULATED_LABEL,
    TaskRecord,
)
from simulated_annotator.config import AnnotatorConfig
from simulated_annotator.ground_truth import GroundTruth
from simulated_annotator.report import DatapointSeconds, seconds_per_datapoint
from simulated_annotator.time_model import CALIBRATION_TOLERANCE, PAPER_ALL_HUMAN_SECONDS, TimeModel


def load_proposals(results: list[dict] | str | Path, *, score_threshold: float = 0.5,
                   max_instances: int = 20) -> dict[int, list[dict]]:
    """COCO results -> {gold image id: [RLE, ...]}, filtered and capped as the platform does."""
    if not isinstance(results, list):
        results = json.loads(Path(results).read_text())
    by_image: dict[int, list[dict]] = {}
    for r in results:
        if r["score"] >= score_threshold:
            by_image.setdefault(r["image_id"], []).append(r)
    return {image_id: [r["segmentation"] for r in sorted(rs, key=lambda r: -r["score"])[:max_instances]]
            for image_id, rs in by_image.items()}


def replay_all_human_phase1(ground_truth: GroundTruth, proposals: Mapping[int, list[dict]],
                            config: AnnotatorConfig | None = None, *,
                            annotator: str = "sim-replay") -> list[TaskRecord]:
    """Every gold pair through MV -> EV -> correction with simulated humans; the task log."""
    config = config or AnnotatorConfig()
    records: list[TaskRecord] = []
    next_mask_id = 1
    for pair in ground_truth:
        media = {"id": pair.image_id, "name": pair.file_name, "sha256": pair.sha256,
                 "width": pair.width, "height": pair.height}
        datapoint = {"id": pair.image_id, "phrase": pair.phrase, "revision": 0, "media": media}

        def log(kind: str, seconds: float, decision: str, mistake: bool) -> None:
            records.append(TaskRecord(annotator, None, pair.image_id, kind, seconds, pair.sha256, pair.phrase,
                                      decision, mistake))

        accepted: list[dict] = []
        rejected: list[dict] = []
        for rle in proposals.get(pair.image_id, []):
            mask = {"id": next_mask_id, "rle": rle, "iscrowd": False}
            next_mask_id += 1
            mv = decisions.answer_mask_verification(
                {"kind": MASK_VERIFICATION, "datapoint": datapoint, "mask": mask, "masks": []}, ground_truth, config)
            log(MASK_VERIFICATION, mv.seconds, mv.decision, mv.mistake)
            (accepted if mv.decision in decisions.MV_ACCEPTS else rejected).append(mask)
        task = {"kind": EXHAUSTIVITY_VERIFICATION, "datapoint": datapoint, "mask": None, "masks": accepted}
        ev = decisions.answer_exhaustivity(task, ground_truth, config)
        log(EXHAUSTIVITY_VERIFICATION, ev.seconds, ev.decision, ev.mistake)
        if ev.decision in ("reject", "reject_unseparated"):
            task = {"kind": CORRECTION, "datapoint": datapoint, "mask": None, "masks": accepted,
                    "candidates": rejected, "lease_token": 0}
            correction = decisions.answer_correction(task, ground_truth, config)
            log(CORRECTION, correction.seconds, correction.outcome, correction.mistake)
    return records


@dataclass(frozen=True)
class CalibrationReport:
    measured: DatapointSeconds
    time_model: TimeModel
    tolerance: float = CALIBRATION_TOLERANCE

    def relative_error(self, which: str) -> float:
        value = self.measured.positive_mean if which == "positive" else self.measured.negative_mean
        return value / PAPER_ALL_HUMAN_SECONDS[which] - 1

    @property
    def ok(self) -> bool:
        return all(abs(self.relative_error(w)) <= self.tolerance for w in ("positive", "negative"))

    def summary(self) -> str:
        lines = [f"{SIMULATED_LABEL}: time-model calibration against the paper's all-human engine",
                 self.time_model.describe()]
        for which in ("negative", "positive"):
            value = self.measured.negative_mean if which == "negative" else self.measured.positive_mean
            by_kind = self.measured.negative_by_kind if which == "negative" else self.measured.positive_by_kind
            parts = ", ".join(f"{k} {v:.1f}" for k, v in by_kind.items())
            verdict = "within" if abs(self.relative_error(which)) <= self.tolerance else "OUTSIDE"
            lines.append(f"  {which}: {value:.1f} s/datapoint vs paper {PAPER_ALL_HUMAN_SECONDS[which]:g} s "
                         f"({self.relative_error(which):+.1%}, {verdict} ±{self.tolerance:.0%}) [{parts}]")
        lines.append("  " + self.measured.summary())
        return "\n".join(lines)


def check_calibration(records: Iterable[TaskRecord], ground_truth: GroundTruth, *,
                      time_model: TimeModel | None = None,
                      datapoints: Iterable[tuple[int, str, str]] | None = None) -> CalibrationReport:
    """Measure seconds per positive and negative datapoint from a task log (replayed or live)."""
    measured = seconds_per_datapoint(records, ground_truth, datapoints=datapoints)
    return CalibrationReport(measured, time_model or TimeModel())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulated_annotator.calibration",
                                     description="Replay the all-human Phase-1 engine with SIMULATED annotators "
                                                 "and compare seconds per datapoint with the paper.")
    parser.add_argument("gold", type=Path, help="the synthetic world's gold.json")
    parser.add_argument("--proposals", type=Path,
                        help="Phase-1 proposer output, COCO results keyed by gold image id (default: none)")
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--max-instances", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the measurement here")
    args = parser.parse_args(argv)
    ground_truth = GroundTruth.from_gold(args.gold)
    proposals = (load_proposals(args.proposals, score_threshold=args.score_threshold,
                                max_instances=args.max_instances) if args.proposals else {})
    config = AnnotatorConfig(seed=args.seed)
    report = check_calibration(replay_all_human_phase1(ground_truth, proposals, config), ground_truth,
                               time_model=config.time_model)
    n_props = sum(len(v) for v in proposals.values())
    print(report.summary())
    print(f"  proposals: {n_props} over {len(ground_truth)} pairs"
          + ("" if args.proposals else " (no --proposals: every datapoint goes straight to EV)"))
    if args.json:
        args.json.write_text(json.dumps({"measured": report.measured.as_dict(), "ok": report.ok,
                                         "time_model": config.time_model.as_dict(),
                                         "paper": PAPER_ALL_HUMAN_SECONDS, "proposals": n_props}, indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
