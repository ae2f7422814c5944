"""Train a verifier: ``python -m verifiers.train --examples EXAMPLES.jsonl --images DIR --out FOLDER [...]``.

``--examples``/``--images`` may be repeated (several files, each with the folder its images are in).

An example line is ``{"task": "mv"|"ev", "image": path under --images, "phrase", "rles": [RLE, ...], "label"}``
and optionally ``"gold"``, the adjudicated verdict that calibration uses (``manage.py export_verifier_examples``
writes them from a project: its human MV/EV verdicts, what corrections imply, and the gold set's verdict where
it has the pair). ``--init URI`` starts from an existing
verifier (folder, s3:// or preset:tiny); the default trains its adapters only. A held-out share (by image and
phrase) is kept for calibration and the report.

``--synthetic`` instead streams fresh examples from the synthetic world, labelled by the simulated annotator:
the command that produces checkpoints/verifier-tiny (base stage from scratch, then the adapters)::

    PYTHONPATH=platform:. nice -n 5 python -m verifiers.train --synthetic --out checkpoints/verifier-tiny \\
        --name verifier-tiny --base-minutes 33 --adapter-minutes 1.5 --eval-every 400 --heldout-per-task 4000 \\
        --calibration-fraction 0.75 --batch-size 64 --lr 1e-3 --lr-final 1e-4 --shuffle-prob 0 --mv-fraction 0.6 \\
        --mv-accept-fraction 0.5 --cross-attn-gate 1.0 --threads 1

From scratch, the cross-attention gates start open (``--cross-attn-gate``; Mllama's 0 leaves the text model blind
to the image and MV collapses to "reject"), and ``--mv-accept-fraction`` re-balances the MV training stream (only
the training stream: held-out and calibration sets keep the natural mix). ``--calibration-fraction`` is the share
of the held-out set that calibrates the temperature and threshold; the rest is the report.

``--render-size N`` shows the verifier its composites at N px, a whole multiple of its render size, on the same
patch grid (verifiers.model.rescale_render); on this CPU, 224 px instead of 112 did not raise held-out EV AUC in 16
minutes of tuning (README).

On a GPU (``--device auto``, the default, picks cuda when there is one) add ``--data-workers N`` to render and
encode batches in N processes; one H200 takes about 28 steps/s at batch 32, which 4-6 workers keep fed.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import random
import sys
from dataclasses import fields
from pathlib import Path

from verifiers.training import Heldout, TrainConfig, cycle_examples, load_example_sets, run_training, shuffled, \
    split_heldout


def _synthetic_sources(config: TrainConfig, *, world_seed: int, heldout_per_task: int, error_rate: float):
    from verifiers.synthetic import example_stream

    def stream(task: str):
        start = 0 if task == "mv" else 500_000

        def open_stream(worker: int = 0, workers: int = 1):
            # Data worker ``worker`` of ``workers`` takes every workers-th scene (disjoint from the other workers')
            # behind its own shuffle buffer; one stream (workers == 1) is exactly the in-process one.
            suffix = f":{worker}/{workers}" if workers > 1 else ""
            # Training learns from single verdicts, as from a project's humans: no adjudication needed.
            return shuffled(example_stream(world_seed, start=start + worker, step=workers, size=224,
                                           error_rate=error_rate, task=task, adjudicators=1),
                            config.shuffle_buffer, random.Random(f"{config.seed}:{task}:buffer{suffix}"))
        return open_stream

    heldout, data = synthetic_heldout(world_seed=world_seed, per_task=heldout_per_task, error_rate=error_rate,
                                      calibration_fraction=config.calibration_fraction)
    return {"mv": stream("mv"), "ev": stream("ev")}, heldout, data


def synthetic_heldout(*, world_seed: int, per_task: int, error_rate: float, calibration_fraction: float,
                      adjudicators: int = 3) -> tuple[Heldout, dict]:
    """Held-out MV and EV questions from world ``world_seed + 10_007`` (never trained on), with their single
    verdicts and the adjudicated ones (majority of ``adjudicators`` simulated annotators) that calibrate."""
    from verifiers.synthetic import example_stream

    held = {task: list(itertools.islice(example_stream(world_seed + 10_007, start=0, size=224, error_rate=error_rate,
                                                       task=task, adjudicators=adjudicators), per_task))
            for task in ("mv", "ev")}
    data = {"source": "synthetic shapes world, simulated-annotator verdicts", "world_seed": world_seed,
            "heldout_world_seed": world_seed + 10_007, "heldout_per_task": per_task,
            "annotator_error_rate": error_rate, "adjudicators": adjudicators, "image_size": 224}
    return Heldout(held, calibration_fraction), data


def _cycle_source(examples: list, seed: str):
    """A stream factory over a fixed list; data worker w of n cycles its own share (every n-th example)."""
    def open_stream(worker: int = 0, workers: int = 1):
        if workers > 1 and len(examples) >= workers:
            return cycle_examples(examples[worker::workers], random.Random(f"{seed}:{worker}/{workers}"))
        return cycle_examples(examples, random.Random(seed if workers == 1 else f"{seed}:{worker}/{workers}"))
    return open_stream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verifiers.train", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--examples", type=Path, action="append",
                        help="JSONL of verdict examples (repeat for several files, each with its --images)")
    source.add_argument("--synthetic", action="store_true", help="stream examples from the synthetic world")
    parser.add_argument("--images", type=Path, action="append",
                        help="folder the examples' image paths are relative to (one per --examples, in order)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--init", default=None, help="verifier to start from (default: a random tiny one)")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/model-cache"))
    parser.add_argument("--name", default="verifier")
    parser.add_argument("--heldout-fraction", type=float, default=0.2)
    parser.add_argument("--heldout-per-task", type=int, default=600, help="--synthetic: held-out examples per task")
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--annotator-error-rate", type=float, default=0.03)
    for f in fields(TrainConfig):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    import torch

    torch.set_num_threads(config.threads)
    from verifiers.model import build_tiny_verifier, load_verifier, open_cross_attention_gates, rescale_render

    init = None  # the verifier a continued run starts from: its URI and version (a local path alone says little)
    if args.init:
        verifier = load_verifier(args.init, cache_dir=args.cache_dir)
        init = {"uri": args.init, "model_version": verifier.version}
        if not hasattr(verifier.model, "set_adapter"):
            parser.error("--init must be a verifier with adapters")
    else:
        verifier = build_tiny_verifier(config.seed)
        open_cross_attention_gates(verifier.model, config.cross_attn_gate)  # from scratch: let the image in
    if config.render_size:
        try:
            rescale_render(verifier, config.render_size)
        except ValueError as exc:
            parser.error(f"--render-size: {exc}")

    if args.synthetic:
        streams, heldout, data = _synthetic_sources(config, world_seed=args.world_seed,
                                                    heldout_per_task=args.heldout_per_task,
                                                    error_rate=args.annotator_error_rate)
        data["init"] = init
    else:
        if len(args.images or []) != len(args.examples):
            parser.error("each --examples needs its --images")
        examples, sources = load_example_sets(args.examples, args.images)
        train, held = split_heldout(examples, args.heldout_fraction)
        by_task = {t: [e for e in train if e.task == t] for t in ("mv", "ev")}
        streams = {t: _cycle_source(xs, f"{config.seed}:{t}") for t, xs in by_task.items() if xs}
        heldout = Heldout({t: [e for e in held if e.task == t] for t in ("mv", "ev")}, config.calibration_fraction)
        data = {"sources": sources, "n_train": {t: len(v) for t, v in by_task.items()},
                "n_heldout": {t: len(v) for t, v in heldout.examples.items()}, "init": init}
        if not args.init and not config.base_steps and not config.base_minutes:
            logging.warning("training adapters on a random base stays at chance: pass --init or --base-steps")
    manifest = run_training(verifier, streams, heldout, args.out, config=config, data=data, name=args.name)
    json.dump({"out": str(args.out), "model_version": manifest["model_version"],
               "thresholds": manifest["thresholds"], "temperature": manifest["temperature"],
               "accuracy": {t: m["accuracy"] for t, m in manifest["metrics"].items()}}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
