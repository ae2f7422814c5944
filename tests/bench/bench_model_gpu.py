"""Benchmark: SAM 3 at its real size on a GPU — phrases per image and click-to-segment latency.

    python -m tests.bench.bench_model_gpu        # needs CUDA; writes bench-results/model-gpu.json

The CPU benchmark (tests/bench/bench_model.py) measures a model with SAM 3's proportions at a quarter of its size;
this one runs the real configuration (transformers' ``Sam3Config()`` / ``Sam3TrackerConfig()`` defaults: 1008 px,
ViT 1024 x 32, DETR 256 x 6, 200 queries; the project's small tokenizer vocabulary) with random weights (time does
not depend on them), bf16 autocast, on the device the engine's GPU workers use. Same measurements as parts 1 and
3 of the CPU benchmark: ``ConceptPredictor.propose`` with 1, 4, 16 and 64 phrases on one 640x480 image (phrases
batched 16 at a time on the cached image features) and the image encode alone; ``ClickPredictor`` first and later
clicks. Wall times after ``torch.cuda.synchronize()``.
"""
from __future__ import annotations

import argparse
import sys

import torch

from tests.bench.bench_model import PHRASE_COUNTS, bench_click_model, bench_phrases, n_params
from tests.bench.report import git_sha, write_report

NAME = "model-gpu"


def build_full(device: str):
    from transformers import Sam3Config, Sam3Model

    from model.sam3.build import LoadedModel, tiny_processor

    processor = tiny_processor(image_size=1008)
    tokenizer = processor.tokenizer
    config = Sam3Config(text_config=dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                         max_position_embeddings=32))
    with torch.device(device):
        model = Sam3Model(config).eval()
    return LoadedModel(model, processor, uri="sam3-full-random", version="sam3-full-random")


def build_full_tracker(device: str):
    from transformers import Sam3TrackerConfig, Sam3TrackerModel

    from model.sam3.interactive import tracker_processor

    with torch.device(device):
        model = Sam3TrackerModel(Sam3TrackerConfig()).eval()
    return model, tracker_processor(1008)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing measured", file=sys.stderr)
        return 2
    device = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    loaded = build_full(device)
    rows, phrases = bench_phrases("sam3-full", loaded, PHRASE_COUNTS, args.reps, device=device)
    del loaded
    torch.cuda.empty_cache()
    tracker = build_full_tracker(device)
    click_rows, clicks = bench_click_model("sam3-full", tracker, 5, 5, device=device)
    figures = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "code_version": git_sha(),
        "phrases16_over_phrases1_time_ratio": phrases["phrases16_over_phrases1_time_ratio"],
        "extra_phrase_over_encode_time_ratio": phrases["extra_phrase_over_encode_time_ratio"],
        "click_p95_ms_first": clicks["first_p95_ms"],
        "click_p95_ms_later": clicks["later_p95_ms"],
        "phrases": phrases,
        "click": clicks,
        "tracker_params": n_params(tracker[0]),
        "max_memory_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
    }
    write_report(NAME, figures, table_rows=rows + click_rows,
                 notes=["real SAM 3 configuration, random weights, bf16 autocast on "
                        f"{figures['device']} (torch {torch.__version__})"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
