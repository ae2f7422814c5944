"""Click-to-segment (PVS): positive/negative points and a box -> one mask, with ``Sam3TrackerModel``.

SAM 3's interactive head is the SAM 2-style tracker (``Sam3TrackerModel``): an image encoder, a prompt
encoder for points/boxes and a small two-way mask decoder. The image embedding is the expensive part, so
``ClickPredictor`` keeps embeddings in an LRU ``EmbeddingCache`` keyed by (model URI, media sha256): the
first click on an image pays for the encoder, every later click only for the prompt encoder and decoder.

- ``preset:tiny-tracker[?seed=N]`` is a ~0.5 M-parameter tracker with the tiny Sam3Model's vision tower
  shape (width 64, 224 px, patch 14) and random weights (tests). ``checkpoints/sam3-tracker-tiny`` is that
  architecture trained on the synthetic world by ``python -m model.training.tracker`` (``make tiny-tracker``).
- A tracker checkpoint is a folder like a Sam3Model one (model/sam3/build.py: safetensors, processor,
  ``manifest.json`` with every file's sha256) whose manifest says ``"model_class": "Sam3TrackerModel"``;
  loading is strict (missing or unexpected weights are a CheckpointError). s3:// checkpoints are fetched
  once into the cache folder, as for Sam3Model.
- Coordinates are pixels of the original image (x right, y down); the mask comes back as COCO RLE at the
  original size. Memory on huge images stays bounded: the encoder sees the image resized to its input size,
  and the low-resolution mask logits are upsampled in bands of rows (one byte per output pixel plus one band
  of floats), never as a full-size float tensor. Images above the media pixel limit are refused earlier by
  ``model.media.open_image``.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import Sam3ImageProcessor, Sam3TrackerConfig, Sam3TrackerModel, Sam3TrackerProcessor

from model import rle as rle_utils
from model.sam3.build import (MANIFEST_NAME, CheckpointError, checkpoint_folder, config_hash, verify_checkpoint,
                              write_manifest)

TRACKER_CLASS = "Sam3TrackerModel"
TINY_TRACKER_URI = "preset:tiny-tracker"
MAX_POINTS = 64  # a click session has a handful; anything far above is a broken client
UPSAMPLE_BAND_ELEMENTS = 4_000_000  # floats per band when upsampling a mask to the original size (16 MB)


@dataclass
class LoadedTracker:
    """A tracker ready for inference (eval mode) with its processor and provenance."""

    model: Sam3TrackerModel
    processor: Sam3TrackerProcessor
    manifest: dict = field(default_factory=dict)
    uri: str = ""
    version: str = ""


# ----------------------------------------------------------------------------------------------
# Presets and checkpoints
# ----------------------------------------------------------------------------------------------


def tiny_tracker_config(*, image_size: int = 224, patch_size: int = 14, hidden_size: int = 64) -> Sam3TrackerConfig:
    """A ~0.5 M-parameter Sam3TrackerConfig: the tiny Sam3Model's vision tower, a width-64 decoder.

    Feature maps are 64², 32², 16² (the decoder's two high-resolution skips and the embedding), masks 64².
    """
    h, grid = hidden_size, image_size // patch_size
    return Sam3TrackerConfig(
        vision_config=dict(
            model_type="sam3_vision_model",
            backbone_config=dict(
                model_type="sam3_vit_model", hidden_size=h, intermediate_size=2 * h, num_hidden_layers=2,
                num_attention_heads=2, image_size=image_size, patch_size=patch_size, window_size=grid // 2,
                global_attn_indexes=[1], pretrain_image_size=image_size,
            ),
            fpn_hidden_size=h,
            backbone_feature_sizes=[[grid * 4] * 2, [grid * 2] * 2, [grid] * 2],
        ),
        prompt_encoder_config=dict(hidden_size=h, image_size=image_size, patch_size=patch_size),
        mask_decoder_config=dict(hidden_size=h, mlp_dim=2 * h, num_attention_heads=2, iou_head_hidden_dim=h),
    )


def tracker_processor(image_size: int) -> Sam3TrackerProcessor:
    return Sam3TrackerProcessor(image_processor=Sam3ImageProcessor(size={"height": image_size, "width": image_size}))


def build_tiny_tracker(seed: int = 0) -> tuple[Sam3TrackerModel, Sam3TrackerProcessor]:
    """A randomly initialised tiny Sam3TrackerModel (eval mode) and its processor; same seed, same weights."""
    config = tiny_tracker_config()
    with torch.random.fork_rng(devices=[]):  # seeding must not disturb the caller's global RNG stream
        torch.manual_seed(seed)
        model = Sam3TrackerModel(config)
    return model.eval(), tracker_processor(config.prompt_encoder_config.image_size)


TRACKER_PRESETS: dict[str, Callable[..., tuple[Sam3TrackerModel, Sam3TrackerProcessor]]] = {
    "tiny-tracker": build_tiny_tracker,
}


def save_tracker_checkpoint(model: Sam3TrackerModel, processor: Sam3TrackerProcessor, folder: str | Path, *,
                            manifest: dict) -> Path:
    """Save weights (safetensors), config, processor and manifest.json (model_class Sam3TrackerModel)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    write_tracker_manifest(folder, manifest, model.config)
    return folder


def write_tracker_manifest(folder: Path, manifest: dict, config: Sam3TrackerConfig) -> dict:
    """(Re)write a tracker checkpoint's manifest: every file's sha256 (a README too), provenance, the class."""
    full = write_manifest(folder, manifest)
    full["model_class"] = TRACKER_CLASS
    full["config_hash"] = config_hash(config)
    if "model_version" not in manifest:  # content-addressed by the weights, like SAM 3 checkpoints
        full["model_version"] = f"tracker-{full['files']['model.safetensors'][:16]}"
    (Path(folder) / MANIFEST_NAME).write_text(json.dumps(full, indent=2, sort_keys=True))  # not itself hashed
    return full


def _load_tracker_verified(folder: Path, *, uri: str, manifest: dict) -> LoadedTracker:
    if manifest.get("model_class") != TRACKER_CLASS:
        raise CheckpointError(f"checkpoint {uri} holds a {manifest.get('model_class')!r}, not a {TRACKER_CLASS}")
    try:
        model, info = Sam3TrackerModel.from_pretrained(
            str(folder), output_loading_info=True, local_files_only=True, use_safetensors=True
        )
        processor = Sam3TrackerProcessor.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot load tracker checkpoint {uri}: {exc}") from exc
    problems = [f"{key}: {sorted(map(str, info[key]))[:10]}"
                for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs") if info.get(key)]
    if problems:
        raise CheckpointError(f"checkpoint {uri} does not match {TRACKER_CLASS} exactly: " + "; ".join(problems))
    _check_sizes(model, processor, uri)
    with torch.no_grad():  # own, aligned copies (see build._load_verified)
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.data = tensor.data.clone()
    version = str(manifest.get("model_version") or uri)
    return LoadedTracker(model=model.eval(), processor=processor, manifest=manifest, uri=uri, version=version)


def _check_sizes(model: Sam3TrackerModel, processor: Sam3TrackerProcessor, uri: str) -> None:
    size = processor.image_processor.size
    expected = model.config.prompt_encoder_config.image_size
    if (size.get("height"), size.get("width")) != (expected, expected):
        raise CheckpointError(f"checkpoint {uri}: the processor resizes to {size}, the model expects {expected}²")


def load_tracker_checkpoint(uri: str, *, cache_dir: str | Path, s3_client: Any = None) -> LoadedTracker:
    """Load a verified tracker checkpoint from a folder, ``file://`` URI or ``s3://bucket/prefix``."""
    folder = checkpoint_folder(uri, cache_dir=cache_dir, s3_client=s3_client)
    return _load_tracker_verified(folder, uri=uri, manifest=verify_checkpoint(folder))


def load_tracker_preset(uri: str) -> LoadedTracker:
    """``preset:tiny-tracker`` or ``preset:tiny-tracker?seed=<int>`` (random weights)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "preset" or parsed.path not in TRACKER_PRESETS:
        raise CheckpointError(f"unknown tracker preset {uri!r}; known: {sorted(TRACKER_PRESETS)}")
    try:
        seed = int(urllib.parse.parse_qs(parsed.query).get("seed", ["0"])[0])
    except ValueError as exc:
        raise CheckpointError(f"{uri!r}: seed must be an integer") from exc
    model, processor = TRACKER_PRESETS[parsed.path](seed=seed)
    manifest = {"preset": parsed.path, "seed": seed, "config_hash": config_hash(model.config), "model_version": uri,
                "model_class": TRACKER_CLASS}
    return LoadedTracker(model=model, processor=processor, manifest=manifest, uri=uri, version=uri)


def resolve_tracker(uri: str, *, cache_dir: str | Path, s3_client: Any = None) -> LoadedTracker:
    """``preset:...`` builds a preset; anything else is a tracker checkpoint. Raises CheckpointError."""
    if uri.startswith("preset:"):
        return load_tracker_preset(uri)
    return load_tracker_checkpoint(uri, cache_dir=cache_dir, s3_client=s3_client)


# ----------------------------------------------------------------------------------------------
# Embedding cache
# ----------------------------------------------------------------------------------------------


@dataclass
class ImageEmbedding:
    """One encoded image: the tracker's feature maps (batch 1, on the model's device) and its (H, W)."""

    features: list[torch.Tensor]
    size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.features)


class EmbeddingCache:
    """A thread-safe LRU of ImageEmbeddings keyed by (model uri, media sha256), bounded in entries and bytes.

    Real SAM 3's tracker embedding is ~21 MB in float32 (288², 144², 72² maps), the tiny one 256 KB. One
    cache may be shared by several predictors so that the bound holds for the whole process.
    """

    def __init__(self, *, max_entries: int = 64, max_bytes: int = 2 << 30):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[tuple[str, str], ImageEmbedding] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple[str, str]) -> ImageEmbedding | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: tuple[str, str], entry: ImageEmbedding) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            if entry.nbytes > self.max_bytes:
                return  # larger than the whole budget: never cached
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    def __contains__(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


# ----------------------------------------------------------------------------------------------
# Prompts and masks
# ----------------------------------------------------------------------------------------------


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"{what} must be a finite number")
    return float(value)


def check_prompts(points: Any, labels: Any, box: Any, size: tuple[int, int] | None = None
                  ) -> tuple[list[tuple[float, float]], list[int], tuple[float, float, float, float] | None]:
    """Normalise a click prompt; ValueError naming the first problem.

    ``points`` [[x, y], ...] and ``labels`` [1|0, ...] (1 = on the object, 0 = not) of equal length, ``box``
    [x1, y1, x2, y2] or None, all in pixels of the original image; at least one point or a box. With
    ``size`` = (height, width) every coordinate must lie inside the image (0 <= x <= width, 0 <= y <= height).
    """
    points = [] if points is None else points
    labels = [] if labels is None else labels
    if not isinstance(points, (list, tuple)) or not isinstance(labels, (list, tuple)):
        raise ValueError('"points" and "labels" must be lists')
    if len(points) != len(labels):
        raise ValueError(f'{len(points)} points but {len(labels)} labels: give one label per point')
    if len(points) > MAX_POINTS:
        raise ValueError(f"at most {MAX_POINTS} points per request, got {len(points)}")
    parsed_points = []
    for i, point in enumerate(points):
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            raise ValueError(f"point {i} must be [x, y]")
        parsed_points.append((_number(point[0], f"point {i} x"), _number(point[1], f"point {i} y")))
    parsed_labels = []
    for i, label in enumerate(labels):
        if isinstance(label, bool) or label not in (0, 1):
            raise ValueError(f"label {i} must be 1 (on the object) or 0 (not on it)")
        parsed_labels.append(int(label))
    parsed_box = None
    if box is not None:
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise ValueError('"box" must be [x1, y1, x2, y2] or null')
        x1, y1, x2, y2 = (_number(v, f"box[{i}]") for i, v in enumerate(box))
        if not (x1 < x2 and y1 < y2):
            raise ValueError('"box" must have x1 < x2 and y1 < y2')
        parsed_box = (x1, y1, x2, y2)
    if not parsed_points and parsed_box is None:
        raise ValueError("give at least one point or a box")
    if size is not None:
        height, width = size
        for i, (x, y) in enumerate(parsed_points):
            if not (0 <= x <= width and 0 <= y <= height):
                raise ValueError(f"point {i} ({x:g}, {y:g}) is outside the {width}x{height} image")
        if parsed_box is not None and not (0 <= parsed_box[0] and 0 <= parsed_box[1] and parsed_box[2] <= width
                                           and parsed_box[3] <= height):
            raise ValueError(f"box {list(parsed_box)} is outside the {width}x{height} image")
    return parsed_points, parsed_labels, parsed_box


def _axis_weights(source: int, target: int, device: torch.device) -> torch.Tensor:
    """[target, source] matrix of 1-D linear interpolation weights, identical to F.interpolate's
    ``align_corners=False`` (each row sums to 1): interpolating the identity gives the operator itself."""
    eye = torch.eye(source, device=device, dtype=torch.float32)[None]  # [1, C=source, L=source]
    return F.interpolate(eye, size=target, mode="linear", align_corners=False)[0].T.contiguous()


def upsample_mask(logits: torch.Tensor, size: tuple[int, int], *, threshold: float = 0.0,
                  band_elements: int = UPSAMPLE_BAND_ELEMENTS) -> np.ndarray:
    """Bilinear upsampling of low-res mask logits [h, w] to (H, W), cut at ``threshold``; a bool array.

    The same numbers as ``F.interpolate(..., mode="bilinear", align_corners=False)`` (separable: rows then
    columns), computed ``band_elements // W`` output rows at a time so that peak memory is one byte per
    output pixel plus one band of floats, whatever the image size.
    """
    height, width = size
    logits = logits.float()
    h, w = logits.shape
    rows = _axis_weights(h, height, logits.device)  # [H, h]
    columns = logits @ _axis_weights(w, width, logits.device).T  # [h, W]
    mask = np.empty((height, width), dtype=bool)
    band = max(1, band_elements // max(width, 1))
    for start in range(0, height, band):
        stop = min(start + band, height)
        mask[start:stop] = ((rows[start:stop] @ columns) > threshold).cpu().numpy()
    return mask


# ----------------------------------------------------------------------------------------------
# Predictor
# ----------------------------------------------------------------------------------------------


@dataclass
class ClickResult:
    """One mask for one prompt: RLE at the original size, the model's predicted IoU as score; ``decode_ms`` covers
    the prompt encoder, mask decoder, upsampling and RLE encoding, ``encode_ms`` the image encoder (or the cache
    lookup)."""

    rle: dict
    score: float
    object_score: float
    size: tuple[int, int]
    cached_embedding: bool
    encode_ms: float
    decode_ms: float

    def to_json(self) -> dict:
        return {"rle": self.rle, "score": self.score, "object_score": self.object_score,
                "image_size": list(self.size), "cached_embedding": self.cached_embedding,
                "timings_ms": {"encode": self.encode_ms, "decode": self.decode_ms}}


ImageSource = Image.Image | Callable[[], Image.Image]


class ClickPredictor:
    """Points/box -> one mask with a Sam3TrackerModel; image embeddings cached by (model uri, media key).

    ``loaded`` is a LoadedTracker or a ``(model, processor)`` pair (then ``uri`` names it in cache keys).
    Safe to share between threads: one lock around the model, so two clicks on a new image encode it once.
    bf16 autocast is used only on CUDA.
    """

    def __init__(self, loaded: LoadedTracker | tuple[Sam3TrackerModel, Sam3TrackerProcessor],
                 device: str | torch.device = "cpu", *, cache: EmbeddingCache | None = None, uri: str = ""):
        if isinstance(loaded, LoadedTracker):
            model, processor, self.uri, self.version = loaded.model, loaded.processor, loaded.uri, loaded.version
        else:
            (model, processor), self.uri, self.version = loaded, uri, uri
        _check_sizes(model, processor, self.uri)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.input_size = model.config.prompt_encoder_config.image_size
        self.cache = cache if cache is not None else EmbeddingCache()
        self._lock = threading.Lock()

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def has_embedding(self, media_key: str) -> bool:
        """Whether the next click on ``media_key`` will skip the image encoder."""
        return (self.uri, media_key) in self.cache

    def embed(self, image: Image.Image) -> ImageEmbedding:
        """Encode one image (no cache): the tracker's feature maps and the image's (H, W)."""
        image = image.convert("RGB")
        pixel_values = self.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
        with torch.inference_mode(), self._autocast():
            features = self.model.get_image_embeddings(pixel_values=pixel_values.to(self.device))
        return ImageEmbedding(features=list(features), size=(image.height, image.width))

    def segment(self, image: ImageSource, *, media_key: str, points=(), labels=(), box=None,
                mask_threshold: float = 0.0, guide: dict | None = None) -> ClickResult:
        """One mask for the prompt. ``image`` is an image or a zero-argument loader, called only on a cache miss.

        ``media_key`` identifies the image content (its sha256). One point and no box asks for three candidate
        masks (a single click is ambiguous: a part, the object, a group) and keeps the one with the best predicted
        IoU, or, given ``guide`` (an RLE of the extent meant, e.g. a coarser mask of the object), the best
        predicted IoU plus IoU with the guide; otherwise the decoder's single-mask output is used. Raises
        ValueError for a bad prompt (see check_prompts), also when a coordinate is outside the image.
        """
        check_prompts(points, labels, box)  # shape errors before any work
        with self._lock:
            started = time.perf_counter()
            key = (self.uri, media_key)
            embedding = self.cache.get(key)
            cached = embedding is not None
            if embedding is None:
                embedding = self.embed(image() if callable(image) else image)
                self.cache.put(key, embedding)
            encoded = time.perf_counter()
            parsed_points, parsed_labels, parsed_box = check_prompts(points, labels, box, size=embedding.size)
            logits, scores, object_score = self._decode(embedding, parsed_points, parsed_labels, parsed_box)
        # Outside the lock.
        if guide is not None and len(scores) > 1:
            candidates = [rle_utils.encode(upsample_mask(candidate, embedding.size, threshold=mask_threshold))
                          for candidate in logits]
            agreement = rle_utils.iou(candidates, [guide])[:, 0]
            best = int(np.argmax(scores.numpy() + agreement))
            mask = candidates[best]
        else:
            best = int(torch.argmax(scores))
            mask = rle_utils.encode(upsample_mask(logits[best], embedding.size, threshold=mask_threshold))
        finished = time.perf_counter()
        return ClickResult(rle=mask, score=float(scores[best]), object_score=object_score, size=embedding.size,
                           cached_embedding=cached, encode_ms=(encoded - started) * 1000,
                           decode_ms=(finished - encoded) * 1000)

    def _decode(self, embedding: ImageEmbedding, points, labels, box) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Low-res mask logits [K, h, w] of the K candidates (3 for one point and no box, else 1), their predicted
        IoU [K] and the object score for one prompt."""
        height, width = embedding.size
        scale = torch.tensor([self.input_size / width, self.input_size / height], dtype=torch.float32)
        inputs: dict[str, torch.Tensor] = {}
        if points:
            inputs["input_points"] = (torch.tensor(points, dtype=torch.float32) * scale)[None, None].to(self.device)
            inputs["input_labels"] = torch.tensor(labels, dtype=torch.long)[None, None].to(self.device)
        if box is not None:
            inputs["input_boxes"] = (torch.tensor(box, dtype=torch.float32).view(2, 2) * scale).view(1, 1, 4).to(
                self.device)
        multimask = len(points) == 1 and box is None
        with torch.inference_mode(), self._autocast():
            outputs = self.model(image_embeddings=embedding.features, multimask_output=multimask, **inputs)
        object_score = float(outputs.object_score_logits[0, 0].float().sigmoid().reshape(-1)[0])
        return outputs.pred_masks[0, 0].float(), outputs.iou_scores[0, 0].float().cpu(), object_score
