"""Benchmark: SAM 3 in the engine — phrases per image, engine overhead, click-to-segment latency.

    python -m tests.bench.bench_model            # full: a few minutes on 2 cores
    python -m tests.bench.bench_model --quick    # fewer images and repetitions, no 64-phrase point, no FLOP count
    python -m tests.bench.bench_model --threads 1  # one torch thread: steadier when other jobs share the cores

Writes bench-results/model.json (model-quick.json with --quick). Three parts:

1. Phrases per image. ``ConceptPredictor.propose`` (image encoded once, phrases batched 16 at a time on the cached
   features) on one 640x480 image with 1, 4, 16 and 64 phrases; the median wall time of each, the image encode
   alone, and the slope (time per extra phrase). Two models with random weights (time does not depend on them):
   - ``tiny``: the 1 M-parameter preset the engine runs on this machine (224 px, width 64);
   - ``sam3-quarter``: SAM 3's own proportions at a quarter of every width *and* a quarter of every token count
     (vision ViT 256 wide x 32 layers, MLP 1184, 4 heads of 64, windows 12 with global layers 7/15/23/31, 504 px
     -> 36x36 tokens; text 256 wide x 6 layers; DETR encoder/decoder 64 wide x 6 layers, MLP 512, 50 queries;
     FPN/mask decoder 64 wide, 3 upsampling stages). Linear layers, convolutions and attention all shrink by the
     same 1/64, so per-phrase and image-encode FLOPs keep SAM 3's ratio (the text tower loses 3/4 of its layers
     because its 32 tokens do not shrink). Prompts are sent with no instance kept (score threshold 1), so the
     figure is the model's; mask postprocessing is part 2's.
   Without ``--quick`` the real SAM 3 configuration (transformers' ``Sam3Config()`` defaults, 840 M parameters)
   is also FLOP-counted: the image encode on the meta device, one phrase on zero-filled CPU weights (attention
   counted with the SDPA formula): the ratio a compute-bound GPU would see. (SAM 3 has 840 M parameters with its
   49k-token vocabulary and the tracker; this Sam3Model with the project's small vocabulary has 525 M.)
2. Engine overhead. A fresh PostgreSQL database; images (640x480 PNG) ingested into a project whose config keeps 3
   instances per phrase (score threshold 0); 4 phrases per image. Timed: ``request_proposals`` with eager tasks,
   i.e. dispatch -> ``sam3.propose_masks.v1`` (read the file from storage, decode, preprocess, infer, upsample and
   RLE-encode masks) -> ``annotation.store_proposals.v1`` (proposals, masks, routing to MV tasks) for every image.
   Divided by the throughput of the bare forward (``get_vision_features`` + the phrase batch on preprocessed
   tensors) on the same images and phrases. With a broker each image adds two Redis round trips (~2 ms each,
   docs/infrastructure.md), not measured here.
3. Click latency. ``POST /api/media/{id}/segment`` through DRF in process (the embedded mode: no result backend),
   on fresh 640x480 images: the first click on each image (reads and encodes it) and five later ones (cached
   embedding, growing point lists and a box). Also the bare ClickPredictor with a SAM 3-quarter tracker.

Every figure is wall time on a shared 2-core machine: the report records the load average and a CPU calibration.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.bench.harness import BenchDatabase, cpu_calibration_ms, percentile, setup_django_in_process
from tests.bench.report import git_sha, write_report

ROOT = Path(__file__).resolve().parents[2]
NAME = "model"
WIDTH, HEIGHT = 640, 480
PHRASE_COUNTS = (1, 4, 16, 64)


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


def quarter_vision_config() -> dict:
    """SAM 3's ViT + FPN at 1/4 width and 1/4 tokens: 256 x 32 layers, 504 px (36x36 patches), FPN 64."""
    return dict(
        backbone_config=dict(model_type="sam3_vit_model", hidden_size=256, intermediate_size=1184,
                             num_hidden_layers=32, num_attention_heads=4, image_size=504, patch_size=14,
                             window_size=12, global_attn_indexes=[7, 15, 23, 31], pretrain_image_size=168),
        fpn_hidden_size=64, backbone_feature_sizes=[[144, 144], [72, 72], [36, 36]],
    )


def quarter_config(tokenizer):
    """SAM 3's proportions at 1/4 of every width and 1/4 of every token count (see the module docstring)."""
    from transformers import Sam3Config

    return Sam3Config(
        vision_config=quarter_vision_config(),
        text_config=dict(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=1024, projection_dim=128,
                         num_hidden_layers=6, num_attention_heads=4, max_position_embeddings=32,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        geometry_encoder_config=dict(hidden_size=64, num_layers=3, num_attention_heads=2, intermediate_size=512),
        detr_encoder_config=dict(hidden_size=64, num_layers=6, num_attention_heads=2, intermediate_size=512),
        detr_decoder_config=dict(hidden_size=64, num_layers=6, num_attention_heads=2, intermediate_size=512,
                                 num_queries=50),
        mask_decoder_config=dict(hidden_size=64, num_attention_heads=2, num_upsampling_stages=3),
    )


def build_quarter(seed: int = 0):
    from transformers import Sam3Model

    from model.sam3.build import tiny_processor

    processor = tiny_processor(image_size=504)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3Model(quarter_config(processor.tokenizer))
    return model.eval(), processor


def build_quarter_tracker(seed: int = 0):
    from transformers import Sam3TrackerConfig, Sam3TrackerModel

    from model.sam3.interactive import tracker_processor

    config = Sam3TrackerConfig(vision_config={"model_type": "sam3_vision_model", **quarter_vision_config()},
                               prompt_encoder_config=dict(hidden_size=64, image_size=504,
                                                                                patch_size=14),
                               mask_decoder_config=dict(hidden_size=64, mlp_dim=512, num_attention_heads=2,
                                                        iou_head_hidden_dim=64))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3TrackerModel(config)
    return model.eval(), tracker_processor(504)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def scene(index: int) -> Image.Image:
    from model.synthetic import render_scene

    return Image.fromarray(render_scene(11, index, size=HEIGHT).image).resize((WIDTH, HEIGHT))


def phrases(n: int) -> list[str]:
    from model.synthetic import phrase_vocabulary

    vocabulary = phrase_vocabulary()
    return [vocabulary[(i * 7) % len(vocabulary)] for i in range(n)]


def row(part: str, model: str, case: str, value: float, ratio: float | None = None) -> dict:
    return {"part": part, "model": model, "case": case, "value": value, "ratio": ratio}


def timed(fn, reps: int) -> float:
    """Median wall ms of ``fn()`` over ``reps`` runs."""
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        if torch.cuda.is_initialized():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


# ----------------------------------------------------------------------------------------------
# 1. Phrases per image
# ----------------------------------------------------------------------------------------------


def bench_phrases(label: str, loaded, counts, reps: int, device: str = "cpu") -> tuple[list[dict], dict]:
    from model.sam3.predictor import ConceptPredictor

    predictor = ConceptPredictor(loaded, device=device)
    image = scene(0)
    pixel_values = predictor.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    pixel_values = pixel_values.to(device)

    def encode():
        with torch.inference_mode(), torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                                                    enabled=device == "cuda"):
            predictor.model.get_vision_features(pixel_values=pixel_values)

    def propose(n):
        return lambda: predictor.propose(image, phrases(n), score_threshold=1.0)

    propose(4)()  # warm-up: allocator, kernels, tokenizer caches
    encode_ms = timed(encode, reps)
    totals = {n: timed(propose(n), reps) for n in counts}
    top = max(counts)
    extra_ms = (totals[top] - totals[1]) / (top - 1)
    rows = [row("phrases", label, f"{n} phrase{'s' if n > 1 else ''}: ms (x 1 phrase)", totals[n],
                totals[n] / totals[1]) for n in counts]
    rows.append(row("phrases", label, "image encode alone: ms (per extra phrase / encode)", encode_ms,
                    extra_ms / encode_ms))
    figures = {"encode_ms": encode_ms, "extra_phrase_ms": extra_ms, "extra_phrase_over_encode_time_ratio":
               extra_ms / encode_ms, "phrases16_over_phrases1_time_ratio": totals[16] / totals[1],
               "total_ms_by_phrases": {str(n): totals[n] for n in counts}, "params": n_params(predictor.model)}
    return rows, figures


def full_sam3_flops() -> dict:
    """FLOPs of the real SAM 3 configuration: image encode (meta device) and one phrase (zero weights, CPU)."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count
    from transformers import Sam3Config, Sam3Model
    from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

    from model.sam3.build import tiny_processor

    def cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    aten = torch.ops.aten
    # FlopCounterMode has formulas for the CUDA attention kernels only. On the meta device SDPA decomposes into
    # bmm (counted); on the CPU it runs the flash kernel for CPU, counted here as 4·B·H·L·S·E (QKᵀ and AV).
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa}
    tokenizer = tiny_processor().tokenizer
    config = Sam3Config(text_config=dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    with torch.device("meta"):
        model = Sam3Model(config).eval()
    params = n_params(model)
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        vision = model.get_vision_features(pixel_values=torch.zeros(1, 3, 1008, 1008, device="meta"))
    encode = counter.get_total_flops()
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.zero_()
    zeros = Sam3VisionEncoderOutput(
        last_hidden_state=torch.zeros(vision.last_hidden_state.shape),
        fpn_hidden_states=tuple(torch.zeros(t.shape) for t in vision.fpn_hidden_states),
        fpn_position_encoding=tuple(torch.zeros(t.shape) for t in vision.fpn_position_encoding))
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(vision_embeds=zeros, input_ids=torch.zeros(1, 32, dtype=torch.long),
              attention_mask=torch.ones(1, 32, dtype=torch.long))
    phrase = counter.get_total_flops()
    ratio = phrase / encode
    return {"params": params, "encode_tflop": encode / 1e12, "phrase_gflop": phrase / 1e9,
            "phrase_over_encode_flop_ratio": ratio,
            "phrases16_over_phrases1_flop_ratio": (1 + 16 * ratio) / (1 + ratio)}


# ----------------------------------------------------------------------------------------------
# 2 and 3: the platform (Django on a fresh PostgreSQL database, eager tasks)
# ----------------------------------------------------------------------------------------------


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bench_engine(label: str, model_uri: str, loaded, n_images: int, n_phrases: int, first_index: int):
    """(rows, figures): images/s of request_proposals end to end vs the bare forward on the same inputs."""
    from django.contrib.auth import get_user_model

    from dataengine.accounts.services import create_project
    from dataengine.annotation.models import Mask, Proposal
    from dataengine.annotation.proposing import request_proposals
    from dataengine.concepts.services import create_datapoints
    from dataengine.engine.models import Job, JobState
    from dataengine.engine.services import promote_model_version, register_model_version
    from dataengine.media.services import ingest_bytes
    from model.sam3.predictor import _repeat_features
    from model.sam3.tokenizer import MAX_TEXT_TOKENS

    user, _ = get_user_model().objects.get_or_create(username="bench-lead")
    project = create_project(name=f"bench-{label}", creator=user, config={"score_threshold": 0.0, "max_instances": 3})
    version = register_model_version(name=f"bench-{label}", uri=model_uri)
    promote_model_version(project, version)
    project.refresh_from_db()
    images = [scene(first_index + i) for i in range(n_images + 1)]
    items = [ingest_bytes(project, name=f"{label}-{i}.png", data=png(image))[0] for i, image in enumerate(images)]
    words = phrases(n_phrases)
    warm, timed_items = items[0], items[1:]
    create_datapoints(project, [(warm, phrase) for phrase in words])
    request_proposals(project)  # warm-up: loads the model into the worker's cache, imports, first queries
    create_datapoints(project, [(item, phrase) for item in timed_items for phrase in words])
    started = time.perf_counter()
    jobs = request_proposals(project)
    engine_s = time.perf_counter() - started
    failed = Job.objects.filter(pk__in=[j.pk for j in jobs]).exclude(state=JobState.DONE)
    if failed.exists():
        raise RuntimeError(f"proposal jobs failed: {list(failed.values_list('error', flat=True))[:3]}")

    # The bare forward on the same images and phrases: preprocessed tensors, encode once, phrases batched.
    model, processor = loaded.model, loaded.processor
    pixels = [processor.image_processor(images=[image], return_tensors="pt")["pixel_values"] for image in images[1:]]
    tokens = processor.tokenizer(words, padding="max_length", truncation=True, max_length=MAX_TEXT_TOKENS,
                                 return_tensors="pt")
    with torch.inference_mode():
        model(vision_embeds=_repeat_features(model.get_vision_features(pixel_values=pixels[0]), n_phrases),
              **tokens)  # warm-up
        started = time.perf_counter()
        for pixel_values in pixels:
            vision = model.get_vision_features(pixel_values=pixel_values)
            model(vision_embeds=_repeat_features(vision, n_phrases), input_ids=tokens["input_ids"],
                  attention_mask=tokens["attention_mask"])
        model_s = time.perf_counter() - started
    stored = Proposal.objects.filter(datapoint__media__in=timed_items)
    masks = Mask.objects.filter(datapoint__media__in=timed_items).count()
    ratio = (n_images / engine_s) / (n_images / model_s)
    assert stored.count() == n_images * n_phrases
    figures = {"engine_over_model_throughput_ratio": ratio, "engine_ms_per_image": engine_s * 1000 / n_images,
               "model_ms_per_image": model_s * 1000 / n_images, "images": n_images, "phrases_per_image": n_phrases,
               "masks_per_image": masks / n_images}
    rows = [row("engine", label, f"{n_images} images x {n_phrases} phrases: engine ms/image (throughput ratio)",
                figures["engine_ms_per_image"], ratio),
            row("engine", label, "bare forward ms/image", figures["model_ms_per_image"])]
    return rows, figures


def bench_click_api(n_images: int, later_per_image: int, first_index: int) -> tuple[dict, dict]:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from dataengine.accounts.models import Role
    from dataengine.accounts.services import add_member, create_project
    from dataengine.media.services import ingest_bytes
    from workers import interactive

    lead, _ = get_user_model().objects.get_or_create(username="bench-lead")
    annotator, _ = get_user_model().objects.get_or_create(username="bench-annotator")
    project = create_project(name="bench-clicks", creator=lead)
    add_member(project, annotator, Role.ANNOTATOR)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=annotator)[0].key}")
    items = [ingest_bytes(project, name=f"click-{i}.png", data=png(scene(first_index + i)))[0]
             for i in range(n_images + 1)]
    rng = np.random.default_rng(0)

    def post(item, body):
        started = time.perf_counter()
        response = client.post(f"/api/media/{item.pk}/segment", body, format="json")
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"click failed: {response.status_code} {response.content[:300]!r}")
        return elapsed, response.json()

    post(items[0], {"points": [[10, 10]], "labels": [1]})  # warm-up: torch, the tracker, the first queries
    first, later, first_model, later_model = [], [], [], []
    for item in items[1:]:
        points = [[float(rng.uniform(0, WIDTH)), float(rng.uniform(0, HEIGHT))]]
        labels = [1]
        elapsed, body = post(item, {"points": points, "labels": labels})
        assert body["cached_embedding"] is False
        first.append(elapsed)
        first_model.append(body["timings_ms"]["encode"] + body["timings_ms"]["decode"])
        for k in range(later_per_image):
            points.append([float(rng.uniform(0, WIDTH)), float(rng.uniform(0, HEIGHT))])
            labels.append(k % 2)
            box = [50.0, 40.0, 400.0, 300.0] if k == later_per_image - 1 else None
            elapsed, body = post(item, {"points": points, "labels": labels, "box": box})
            assert body["cached_embedding"] is True
            later.append(elapsed)
            later_model.append(body["timings_ms"]["encode"] + body["timings_ms"]["decode"])
    interactive.clear_click_predictors()
    figures = {"click_p50_ms_first": percentile(first, 50), "click_p95_ms_first": percentile(first, 95),
               "click_p50_ms_later": percentile(later, 50), "click_p95_ms_later": percentile(later, 95),
               "click_worker_p50_ms_first": percentile(first_model, 50),
               "click_worker_p50_ms_later": percentile(later_model, 50),
               "clicks_first": len(first), "clicks_later": len(later)}
    rows = [row("click", "API, tiny tracker", f"{kind} click {q}: ms", figures[f"click_{q}_ms_{kind}"])
            for kind in ("first", "later") for q in ("p50", "p95")]
    return rows, figures


def bench_click_model(label: str, tracker, n_images: int, later_per_image: int,
                      device: str = "cpu") -> tuple[dict, dict]:
    from model.sam3.interactive import ClickPredictor

    predictor = ClickPredictor(tracker, device=device, uri=f"bench:{label}")
    rng = np.random.default_rng(1)
    predictor.segment(scene(0), media_key="warm", points=[[5, 5]], labels=[1])
    first, later = [], []
    for i in range(n_images):
        image = scene(100 + i)
        started = time.perf_counter()
        predictor.segment(image, media_key=f"m{i}", points=[[100, 100]], labels=[1])
        first.append((time.perf_counter() - started) * 1000)
        points, labels = [[100.0, 100.0]], [1]
        for k in range(later_per_image):
            points.append([float(rng.uniform(0, WIDTH)), float(rng.uniform(0, HEIGHT))])
            labels.append(k % 2)
            started = time.perf_counter()
            assert predictor.segment(image, media_key=f"m{i}", points=points, labels=labels).cached_embedding
            later.append((time.perf_counter() - started) * 1000)
    figures = {"first_p50_ms": percentile(first, 50), "first_p95_ms": percentile(first, 95),
               "later_p50_ms": percentile(later, 50), "later_p95_ms": percentile(later, 95),
               "params": n_params(predictor.model)}
    rows = [row("click", f"ClickPredictor, {label} tracker", f"{kind} click {q}: ms", figures[f"{kind}_{q}_ms"])
            for kind in ("first", "later") for q in ("p50", "p95")]
    return rows, figures


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and repetitions; no FLOP count")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice); 1 is steadier on a busy machine")
    args = parser.parse_args(argv)
    quick = args.quick
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 2 if quick else 4
    counts = PHRASE_COUNTS[:3] if quick else PHRASE_COUNTS
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load_before, calibration = os.getloadavg(), cpu_calibration_ms()
    started = time.perf_counter()

    from model.sam3.build import LoadedModel, build_tiny, save_checkpoint
    from model.sam3.interactive import build_tiny_tracker

    tiny = LoadedModel(*build_tiny(seed=0), uri="preset:tiny?seed=0", version="tiny")
    quarter = LoadedModel(*build_quarter(seed=0), uri="sam3-quarter", version="sam3-quarter")
    table, figures, notes = [], {}, []

    rows_tiny, tiny_phrases = bench_phrases("tiny", tiny, counts, reps)
    rows_quarter, quarter_phrases = bench_phrases("sam3-quarter", quarter, counts, 2)
    table += rows_tiny + rows_quarter
    figures["phrases16_over_phrases1_time_ratio"] = quarter_phrases["phrases16_over_phrases1_time_ratio"]
    figures["phrases16_over_phrases1_time_ratio_tiny"] = tiny_phrases["phrases16_over_phrases1_time_ratio"]
    figures["extra_phrase_over_encode_time_ratio"] = quarter_phrases["extra_phrase_over_encode_time_ratio"]
    figures["extra_phrase_over_encode_time_ratio_tiny"] = tiny_phrases["extra_phrase_over_encode_time_ratio"]
    figures["phrases"] = {"tiny": tiny_phrases, "sam3_quarter": quarter_phrases}
    if not quick:
        flops = full_sam3_flops()
        figures["sam3_full_flops"] = flops
        figures["phrases16_over_phrases1_flop_ratio_sam3_full"] = flops["phrases16_over_phrases1_flop_ratio"]
        table += [row("flops", "sam3 (full config)", "image encode: GFLOP", flops["encode_tflop"] * 1000),
                  row("flops", "sam3 (full config)", "one phrase: GFLOP (16 phrases / 1, compute-bound)",
                      flops["phrase_gflop"], flops["phrases16_over_phrases1_flop_ratio"])]
        notes.append(f"real SAM 3 config ({flops['params'] / 1e6:.0f} M params), FLOP count: image encode "
                     f"{flops['encode_tflop']:.2f} TFLOP, one phrase {flops['phrase_gflop']:.0f} GFLOP "
                     f"(ratio {flops['phrase_over_encode_flop_ratio']:.3f}) -> 16 phrases / 1 phrase = "
                     f"{flops['phrases16_over_phrases1_flop_ratio']:.2f} when compute-bound")

    with BenchDatabase(f"dataengine_bench_model_{os.getpid()}") as db, \
            tempfile.TemporaryDirectory(prefix="bench-model-") as data_dir:
        setup_django_in_process(db.url, data_dir)
        quarter_folder = save_checkpoint(quarter.model, quarter.processor, Path(data_dir) / "sam3-quarter",
                                         manifest={"model_version": "sam3-quarter"})
        rows, engine_tiny = bench_engine("tiny", "preset:tiny?seed=0", tiny, 4 if quick else 12, 4, first_index=10)
        table += rows
        rows, engine_quarter = bench_engine("sam3-quarter", str(quarter_folder), quarter, 2 if quick else 4, 4,
                                            first_index=40)
        table += rows
        figures["engine_over_model_throughput_ratio"] = engine_tiny["engine_over_model_throughput_ratio"]
        figures["engine_over_model_throughput_ratio_sam3_quarter"] = \
            engine_quarter["engine_over_model_throughput_ratio"]
        figures["engine"] = {"tiny": engine_tiny, "sam3_quarter": engine_quarter}
        rows, clicks = bench_click_api(5 if quick else 20, 5, first_index=60)
        table += rows
        figures.update(clicks)
    rows, quarter_clicks = bench_click_model("sam3-quarter", build_quarter_tracker(), 2 if quick else 5, 5)
    table += rows
    figures["click_sam3_quarter_model"] = quarter_clicks
    figures["setup"] = {"quick": quick, "machine_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "load_average_before": load_before, "load_average_after": os.getloadavg(),
                        "cpu_calibration_ms_before": calibration, "cpu_calibration_ms_after": cpu_calibration_ms(),
                        "image_size": [HEIGHT, WIDTH], "git": git_sha(), "seconds": time.perf_counter() - started,
                        "torch": torch.__version__}
    notes += [
        "random weights everywhere: times do not depend on them, masks mean nothing",
        "sam3-quarter = SAM 3's proportions at 1/4 widths and 1/4 tokens (FLOP ratios kept; see the docstring)",
        "engine = request_proposals with eager tasks on PostgreSQL (dispatch, storage read, decode, infer, RLE, "
        "store + route); 3 instances kept per phrase; no broker round trips",
        "clicks through DRF in process (embedded mode); first = the first click on a fresh image",
        f"shared 2-core machine: load average {load_before[0]:.1f} before the run; CPU calibration "
        f"{calibration:.0f} ms",
    ]
    write_report(NAME + ("-quick" if quick else ""), figures, table_rows=table, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
