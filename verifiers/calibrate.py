"""Recalibrate a verifier: ``python -m verifiers.calibrate --checkpoint URI --out FOLDER (--synthetic | --examples
EXAMPLES.jsonl --images DIR [--examples ... --images ...]) [--target-precision P]``.

The weights stay; the temperatures, the thresholds (``mv``, ``mv_reject``, ``ev``, ``ev_zero``, ``ev_zero_after_check``)
and, where the questions carry SAM 3's witnesses, the weights combining them with the verifier are chosen again
on held-out verdicts (adjudicated where the examples carry ``gold``: see verifiers.training.evaluate) for the
target precision, and written with the report into a new checkpoint folder. Calibration is part of the version
(verifiers.model.write_manifest), so the result registers as a new verifier version whose manifest names the
one it came from. Use it when gold verdicts arrive or a project's target precision changes, and on the questions
the engine really asks (``verifiers.engine_questions``: the routing's thresholds must hold there)::

    PYTHONPATH=platform:. python -m verifiers.calibrate --checkpoint checkpoints/verifier-tiny \\
        --out checkpoints/verifier-tiny --examples data/calib-world5/examples.jsonl --images data/calib-world5 \\
        --examples data/calib-world6/examples.jsonl --images data/calib-world6

Several files (each with its images folder) pool their questions: more held-out verdicts, a tighter bound on each
threshold's precision.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from verifiers.model import save_verifier
from verifiers.options import TASKS
from verifiers.training import Heldout, TrainConfig, evaluate, load_example_sets, write_readme


def recalibrate(verifier, heldout: Heldout, out: str | Path, *, config: TrainConfig, data: dict) -> dict:
    """Fit temperatures and thresholds of ``verifier`` on ``heldout`` and save it to ``out``; the new manifest."""
    # Asked as routing will ask it: with the templates the verifier names (not the current ones).
    evaluation = evaluate(verifier.model, verifier.processor, verifier.letter_ids, heldout,
                          size=verifier.render_size, config=config, templates={t: verifier.template(t) for t in TASKS})
    previous = dict(verifier.manifest)
    manifest = {
        "temperature": evaluation["temperature"],
        "thresholds": evaluation["thresholds"],
        "with_sam3": evaluation["with_sam3"],
        "target_precision": config.target_precision,
        "drop_precision": config.drop_precision,
        "metrics": evaluation["metrics"],
        "calibration": {"from_version": previous.get("model_version"), "data": data,
                        "target_precision": config.target_precision, "drop_precision": config.drop_precision,
                        "min_support": config.min_support,
                        "calibration_fraction": heldout.calibration_fraction},
    }
    verifier.manifest = {k: v for k, v in previous.items() if k != "model_version"}
    full = save_verifier(verifier, out, manifest=manifest)
    write_readme(out, full)
    return full


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verifiers.calibrate", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--examples", type=Path, action="append",
                        help="JSONL of held-out verdict examples (optional \"gold\"); repeat for several files")
    source.add_argument("--synthetic", action="store_true", help="held-out questions of the synthetic world")
    parser.add_argument("--checkpoint", required=True, help="verifier folder, s3:// URI or preset:tiny-verifier")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write (may be the same)")
    parser.add_argument("--images", type=Path, action="append",
                        help="folder the examples' image paths are relative to (one per --examples, in order)")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/model-cache"))
    parser.add_argument("--target-precision", type=float, default=TrainConfig.target_precision)
    parser.add_argument("--drop-precision", type=float, default=TrainConfig.drop_precision,
                        help="precision at which MV's rejections (masks dropped unseen) are certified")
    parser.add_argument("--min-support", type=int, default=TrainConfig.min_support)
    parser.add_argument("--calibration-fraction", type=float, default=0.75)
    parser.add_argument("--heldout-per-task", type=int, default=4000, help="--synthetic: questions per task")
    parser.add_argument("--world-seed", type=int, default=0, help="--synthetic: the world the verifier trained on")
    parser.add_argument("--annotator-error-rate", type=float, default=0.03)
    parser.add_argument("--adjudicators", type=int, default=3, help="--synthetic: annotators per gold verdict")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if not 0 < args.target_precision <= 1 or not 0 < args.drop_precision <= 1:
        parser.error("--target-precision and --drop-precision must be in (0, 1]")
    if not 0 < args.calibration_fraction < 1:
        parser.error("--calibration-fraction must be in (0, 1): the rest is the report")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    import torch

    from verifiers.model import load_verifier
    from verifiers.train import synthetic_heldout

    torch.set_num_threads(args.threads)
    verifier = load_verifier(args.checkpoint, cache_dir=args.cache_dir)
    if args.synthetic:
        heldout, data = synthetic_heldout(world_seed=args.world_seed, per_task=args.heldout_per_task,
                                          error_rate=args.annotator_error_rate,
                                          calibration_fraction=args.calibration_fraction,
                                          adjudicators=args.adjudicators)
    else:
        if len(args.images or []) != len(args.examples):
            parser.error("each --examples needs its --images")
        examples, sources = load_example_sets(args.examples, args.images)
        heldout = Heldout({t: [e for e in examples if e.task == t] for t in ("mv", "ev")}, args.calibration_fraction,
                          keep_encoded=False)
        data = {"sources": sources, "n": {t: len(v) for t, v in heldout.examples.items()}}
    config = TrainConfig(target_precision=args.target_precision, drop_precision=args.drop_precision,
                         min_support=args.min_support)
    manifest = recalibrate(verifier, heldout, args.out, config=config, data=data)
    json.dump({"out": str(args.out), "model_version": manifest["model_version"],
               "from_version": manifest["calibration"]["from_version"], "thresholds": manifest["thresholds"],
               "temperature": manifest["temperature"],
               "threshold_report": {t: m["thresholds"] for t, m in manifest["metrics"].items()}},
              sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
