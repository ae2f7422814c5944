"""Benchmark: MV verifier throughput (masks/s) at batch sizes 1, 8 and 32, rendering timed apart from the model.

    python -m tests.bench.bench_verifier                     # checkpoints/verifier-tiny, 96 masks per batch size
    python -m tests.bench.bench_verifier --quick             # 32 masks, one repetition (smoke)
    python -m tests.bench.bench_verifier --verifier PATH     # another checkpoint (folder, s3:// or preset:tiny)
    python -m tests.bench.bench_verifier --device cpu        # default: auto (cuda when torch sees one)

Writes bench-results/verifier.json (verifier-quick.json with --quick). The masks are the visible instances of
synthetic scenes (``model.synthetic.render_scene``, 224 px) with a phrase of their scene, so every question is
one the engine could ask. For each batch size B (``Verifier.batch_size``), the best of ``--repeat`` timed passes
over the same masks, after one warm-up pass:

* ``render``: ``verifiers.render.render_mv`` alone (the side-by-side composite; CPU, PIL, independent of B);
* ``preprocess``: ``verifiers.model.encode`` alone (MllamaProcessor: tiles, tokens) in batches of B;
* ``model``: ``Verifier.raw_logits("mv", ...)`` on the pre-rendered composites: preprocess, transfer and the
  forward pass with the shared guideline prefix, in batches of B -> ``verifier_mv_masks_per_s_batch{B}``;
* ``end to end``: ``Verifier.score_mv`` (render + model + softmax) -> ``verifier_mv_end_to_end_masks_per_s_batch{B}``.

``verifier_mv_batch32_over_batch1_ratio`` = model masks/s at batch 32 / at batch 1;
``verifier_mv_max_logit_diff_across_batches`` checks that batching leaves the option logits as they are.
Random or trained weights make no difference to the time. On a shared 2-core machine, the report records the load
average and a CPU calibration; on a GPU, the device name.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from tests.bench.report import git_sha, write_report

ROOT = Path(__file__).resolve().parents[2]
NAME = "verifier"
DEFAULT_VERIFIER = ROOT / "checkpoints" / "verifier-tiny"
BATCH_SIZES = (1, 8, 32)


def mv_items(n: int, *, seed: int = 0) -> list:
    """``n`` MV questions: visible instances of synthetic scenes, each with a phrase of its scene."""
    from model import rle
    from model.synthetic import render_scene
    from verifiers.model import MVItem

    items, index = [], 0
    while len(items) < n:
        scene = render_scene(seed, index)
        image = Image.fromarray(scene.image)
        phrases = [text for text, _ in scene.phrases] or ["shape"]
        for k, mask in enumerate(scene.visible):
            if mask.any() and len(items) < n:
                items.append(MVItem(image, rle.encode(mask), phrases[k % len(phrases)]))
        index += 1
    return items


def cpu_calibration_ms() -> float | None:
    """tests.bench.harness's CPU calibration; None where its database driver is missing (a bare GPU machine)."""
    try:
        from tests.bench.harness import cpu_calibration_ms as calibrate
    except ImportError:
        return None
    return calibrate()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_seconds(fn, repeat: int, device: str) -> float:
    """The best wall time of ``repeat`` calls of ``fn`` (after the caller's warm-up)."""
    best = float("inf")
    for _ in range(repeat):
        _sync(device)
        started = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return best


def measure(verifier, items, batch_sizes=BATCH_SIZES, repeat: int = 2) -> tuple[dict, list[dict]]:
    """(figures, table rows) for ``items`` at each batch size; see the module docstring."""
    from verifiers.model import encode
    from verifiers.options import options_for
    from verifiers.prompts import check_phrase
    from verifiers.render import render_mv

    device = str(verifier.device)
    n = len(items)
    phrases = [check_phrase(item.phrase) for item in items]
    texts = [verifier.question("mv", phrase) for phrase in phrases]

    def render():
        return [render_mv(item.image, item.rle, phrase, size=verifier.render_size)
                for item, phrase in zip(items, phrases)]

    images = render()  # warm-up (and the composites the model part reads)
    render_s = best_seconds(render, repeat, device)
    figures: dict = {"verifier_mv_render_ms_per_mask": render_s * 1000 / n}
    rows = [{"part": "render", "batch": None, "ms_per_mask": render_s * 1000 / n, "masks_per_s": n / render_s}]
    saved = verifier.batch_size
    reference = None  # logits at the first batch size: batching must not change the answers
    figures["verifier_mv_max_logit_diff_across_batches"] = 0.0
    try:
        for b in batch_sizes:
            verifier.batch_size = b

            def preprocess():
                for start in range(0, n, b):
                    encode(verifier.processor, images[start:start + b], texts[start:start + b],
                           max_tokens=verifier.max_tokens)

            def model():
                return verifier.raw_logits("mv", images, texts)

            def end_to_end():
                return verifier.score_mv(items)

            logits = model()  # warm-up
            assert tuple(logits.shape) == (n, len(options_for("mv")))
            if reference is None:
                reference = logits
            diff = float((logits - reference).abs().max()) if n else 0.0
            figures["verifier_mv_max_logit_diff_across_batches"] = max(
                figures["verifier_mv_max_logit_diff_across_batches"], diff)
            preprocess()
            preprocess_s = best_seconds(preprocess, repeat, device)
            model_s = best_seconds(model, repeat, device)
            end_s = best_seconds(end_to_end, repeat, device)
            figures[f"verifier_mv_masks_per_s_batch{b}"] = n / model_s
            figures[f"verifier_mv_model_ms_per_mask_batch{b}"] = model_s * 1000 / n
            figures[f"verifier_mv_preprocess_ms_per_mask_batch{b}"] = preprocess_s * 1000 / n
            figures[f"verifier_mv_end_to_end_masks_per_s_batch{b}"] = n / end_s
            rows += [{"part": "preprocess (processor)", "batch": b, "ms_per_mask": preprocess_s * 1000 / n,
                      "masks_per_s": n / preprocess_s},
                     {"part": "model (preprocess + forward)", "batch": b, "ms_per_mask": model_s * 1000 / n,
                      "masks_per_s": n / model_s},
                     {"part": "end to end (score_mv)", "batch": b, "ms_per_mask": end_s * 1000 / n,
                      "masks_per_s": n / end_s}]
    finally:
        verifier.batch_size = saved
    first, last = min(batch_sizes), max(batch_sizes)
    figures[f"verifier_mv_batch{last}_over_batch{first}_ratio"] = \
        figures[f"verifier_mv_masks_per_s_batch{last}"] / figures[f"verifier_mv_masks_per_s_batch{first}"]
    return figures, rows


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: torch sees no CUDA device")
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 masks, one repetition")
    parser.add_argument("--verifier", default=str(DEFAULT_VERIFIER),
                        help="verifier checkpoint: folder, s3:// or preset:tiny?seed=N (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:N")
    parser.add_argument("--masks", type=int, default=None, help="masks per batch size (default 96, --quick 32)")
    parser.add_argument("--repeat", type=int, default=None, help="timed passes, best kept (default 2, --quick 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args, _ = parser.parse_known_args(argv)  # make bench passes every benchmark's arguments to each
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.masks or (32 if args.quick else 96)
    repeat = args.repeat or (1 if args.quick else 2)
    device = resolve_device(args.device)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load_before, calibration = os.getloadavg(), cpu_calibration_ms()
    started = time.perf_counter()

    from verifiers.model import load_verifier

    with tempfile.TemporaryDirectory(prefix="bench-verifier-") as cache:
        verifier = load_verifier(args.verifier, cache_dir=cache, device=device)
    items = mv_items(n)
    figures, rows = measure(verifier, items, repeat=repeat)
    params = sum(p.numel() for p in verifier.model.parameters())
    figures["setup"] = {
        "quick": args.quick, "verifier": args.verifier, "model_version": verifier.version, "params": params,
        "device": device, "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "masks": n, "repeat": repeat, "batch_sizes": list(BATCH_SIZES), "render_size": verifier.render_size,
        "machine_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "cpu_calibration_ms_before": calibration, "cpu_calibration_ms_after": cpu_calibration_ms(),
        "git": git_sha(), "seconds": time.perf_counter() - started,
    }
    ratio = figures["verifier_mv_batch32_over_batch1_ratio"]
    notes = [
        f"verifier {verifier.version} ({params / 1e6:.1f} M params) on {device}; {n} masks of synthetic scenes, "
        f"best of {repeat} pass(es) after a warm-up",
        "model = Verifier.raw_logits on pre-rendered composites (processor + forward); render = render_mv alone; "
        "end to end = score_mv (render + model)",
        f"batch 32 / batch 1 model throughput: {ratio:.2f}",
        f"load average {load_before[0]:.1f} before the run; CPU calibration "
        f"{'-' if calibration is None else f'{calibration:.0f}'} ms",
    ]
    write_report(NAME + ("-quick" if args.quick else ""), figures, table_rows=rows, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
