"""Check a calibrated verifier's thresholds on verdicts it was not calibrated on:
``python -m verifiers.validate --checkpoint URI --examples EXAMPLES.jsonl --images DIR [--examples ... --images ...]``.

A threshold is chosen where the lower confidence bound of its precision on the calibration verdicts meets the target
(verifiers.calibrate); fresh verdicts say whether it holds. For each threshold stored with the version, asked as
routing asks (the version's templates, temperatures and SAM 3 weights; EV claims split by whether what the question
leaves unboxed is explained, with the version's ``mv_reject``), it prints JSON: how many new questions of the claim's
kind there are, how many the threshold certifies, their precision against the adjudicated verdicts and its one-sided
95% Wilson bounds. ``refuted``: even the upper bound is below the target (``mv_reject``: the drop precision); then
calibrate again on more verdicts. Nothing is written.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from verifiers import calibration
from verifiers.calibration import SEEN, UNBOXED_EXPLAINED, witnesses_named
from verifiers.options import TASKS
from verifiers.synthetic import Example
from verifiers.training import (
    ACCEPTS,
    accept_probability,
    calibration_label,
    claim_witnesses,
    explained_questions,
    heldout_batches,
    heldout_logits,
    load_example_sets,
    mask_key,
    threshold_groups,
)


def _claim_report(certified: np.ndarray, member: np.ndarray, right: np.ndarray, threshold: float,
                  target: float) -> dict:
    n, correct = int(certified.sum()), int(right[certified].sum())
    upper = 1.0 - calibration.wilson_lower(n - correct, n) if n else None
    return {"threshold": threshold, "target": target, "questions": int(member.sum()), "certified": n,
            "coverage": n / int(member.sum()) if member.any() else 0.0,
            "precision": correct / n if n else None,
            "precision_lower_95": calibration.wilson_lower(correct, n) if n else None,
            "precision_upper_95": upper, "refuted": upper is not None and upper < target}


def validate(verifier, examples: Sequence[Example], *, device: str = "cpu") -> dict[str, dict]:
    """Each stored threshold of ``verifier`` on ``examples`` (see the module docstring), by threshold name."""
    manifest = verifier.manifest
    thresholds, temperature = manifest.get("thresholds") or {}, manifest.get("temperature") or {}
    target = float(manifest.get("target_precision", 0.0))
    templates = {t: verifier.template(t) for t in TASKS}
    model, processor, letter_ids, size = verifier.model, verifier.processor, verifier.letter_ids, verifier.render_size
    report: dict[str, dict] = {}
    mv_scored: dict[tuple, float] = {}  # MV P(accept) by mask_key, for the EV claims' split
    for task in TASKS:
        asked = [e for e in examples if e.task == task]
        if not asked:
            continue
        model.set_adapter(task)
        logits = heldout_logits(model, processor, letter_ids, asked, size=size, device=device,
                                encoded=heldout_batches(processor, asked, size=size, templates=templates))
        p_accept = accept_probability(task, logits, float(temperature.get(task) or 1.0))
        right = np.array([calibration_label(e) in ACCEPTS[task] for e in asked], dtype=bool)
        if task == "mv":
            mv_scored = {mask_key(e, e.rles[0]): float(p) for e, p in zip(asked, p_accept)}
            everything = np.ones(len(asked), dtype=bool)
            if thresholds.get("mv") is not None:
                report["mv"] = _claim_report(p_accept >= thresholds["mv"], everything, right, thresholds["mv"], target)
            if thresholds.get("mv_reject") is not None:
                report["mv_reject"] = _claim_report(p_accept <= thresholds["mv_reject"], everything, ~right,
                                                    thresholds["mv_reject"],
                                                    float(manifest.get("drop_precision", target)))
            continue
        split = any(name.endswith(UNBOXED_EXPLAINED) for name in thresholds)
        explained = explained_questions(model, processor, letter_ids, asked, mv_scored, thresholds.get("mv_reject"),
                                        temperature=float(temperature.get("mv") or 1.0), size=size, device=device,
                                        templates=templates) if split else None
        seen_split = any(name.endswith(SEEN) for name in thresholds)
        for name, member in threshold_groups(task, asked, explained, p_accept if seen_split else None).items():
            threshold = thresholds.get(name)
            if threshold is None:
                continue
            score = p_accept
            weights = (manifest.get("with_sam3") or {}).get(name)
            if weights:
                needed = witnesses_named(weights)
                if any(getattr(e, w) is None for e, m in zip(asked, member) if m for w in needed):
                    raise ValueError(f"{name} weighs SAM 3's {sorted(needed)}; some of these questions lack them")
                score = calibration.with_sam3(score, claim_witnesses(asked, member, needed), weights)
            report[name] = _claim_report(member & (score >= threshold), member, right, threshold, target)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verifiers.validate", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="verifier folder, s3:// URI")
    parser.add_argument("--examples", type=Path, action="append", required=True,
                        help="JSONL of verdicts the version was not calibrated on (repeat for several files)")
    parser.add_argument("--images", type=Path, action="append", required=True,
                        help="folder the examples' image paths are relative to (one per --examples, in order)")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/model-cache"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if len(args.images) != len(args.examples):
        parser.error("each --examples needs its --images")
    import torch

    from verifiers.model import load_verifier

    torch.set_num_threads(args.threads)
    verifier = load_verifier(args.checkpoint, cache_dir=args.cache_dir, device="cpu")
    examples, sources = load_example_sets(args.examples, args.images)
    calibrated_on = {s["path"] for s in ((verifier.manifest.get("calibration") or {}).get("data") or {})
                     .get("sources") or []}
    if calibrated_on & {s["path"] for s in sources}:
        parser.error(f"{verifier.version} was calibrated on {sorted(calibrated_on)}: validate on other verdicts")
    try:
        report = validate(verifier, examples)
    except ValueError as exc:
        parser.error(str(exc))
    json.dump({"model_version": verifier.version, "sources": [s["path"] for s in sources], "thresholds": report},
              sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
