"""Turn (config, checkpoint) into a SAM 3 model: tiny presets, checkpoint save with a manifest, strict load.

A checkpoint is a folder: ``Sam3Model.save_pretrained`` + ``Sam3Processor.save_pretrained`` files and a
``manifest.json`` that records what produced it and the sha256 of every other file. Loading verifies the
hashes and refuses missing or unexpected weights (transformers' ``from_pretrained`` only warns).
Nothing here downloads from a model hub.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
import transformers
from transformers import Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

from model.media import sha256_of
from model.sam3.tokenizer import MAX_TEXT_TOKENS, build_tokenizer
from model.provenance import code_version

CHECKPOINT_FORMAT = "dataengine.sam3-checkpoint.v1"
MANIFEST_NAME = "manifest.json"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreachable, incomplete, tampered with, or not matching its model."""


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode) with its processor and provenance."""

    model: Sam3Model
    processor: Sam3Processor
    manifest: dict = field(default_factory=dict)
    uri: str = ""
    version: str = ""


# ----------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------


def tiny_config(*, vocab_size: int, bos_token_id: int, eos_token_id: int, pad_token_id: int,
                image_size: int = 224, patch_size: int = 14, hidden_size: int = 64,
                num_queries: int = 20) -> Sam3Config:
    """A ~1 M-parameter Sam3Config (docs/infrastructure.md): width 64, 1-2 layers per block.

    With image 224 and patch 14 the ViT sees 16x16 patches; FPN levels are 64, 32, 16 (and 8, unused)
    and ``pred_masks`` come out at 64x64.
    """
    h = hidden_size
    grid = image_size // patch_size
    return Sam3Config(
        vision_config=dict(
            backbone_config=dict(
                model_type="sam3_vit_model", hidden_size=h, intermediate_size=2 * h, num_hidden_layers=2,
                num_attention_heads=2, image_size=image_size, patch_size=patch_size, window_size=grid // 2,
                global_attn_indexes=[1], pretrain_image_size=image_size,
            ),
            fpn_hidden_size=h,
            backbone_feature_sizes=[[grid * 4] * 2, [grid * 2] * 2, [grid] * 2],
        ),
        text_config=dict(
            vocab_size=vocab_size, hidden_size=h, intermediate_size=2 * h, projection_dim=h, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=MAX_TEXT_TOKENS, bos_token_id=bos_token_id,
            eos_token_id=eos_token_id, pad_token_id=pad_token_id,
        ),
        geometry_encoder_config=dict(hidden_size=h, num_layers=1, num_attention_heads=2, intermediate_size=2 * h),
        detr_encoder_config=dict(hidden_size=h, num_layers=1, num_attention_heads=2, intermediate_size=2 * h),
        detr_decoder_config=dict(hidden_size=h, num_layers=1, num_attention_heads=2, intermediate_size=2 * h,
                                 num_queries=num_queries),
        mask_decoder_config=dict(hidden_size=h, num_attention_heads=2),
    )


def tiny_processor(image_size: int = 224) -> Sam3Processor:
    """Processor with the offline word-level CLIP tokenizer; images are resized to image_size²."""
    with tempfile.TemporaryDirectory(prefix="sam3-tokenizer-") as folder:
        tokenizer = build_tokenizer(folder)  # fully in memory once loaded
    image_processor = Sam3ImageProcessor(size={"height": image_size, "width": image_size})
    return Sam3Processor(image_processor=image_processor, tokenizer=tokenizer)


def build_tiny(seed: int = 0) -> tuple[Sam3Model, Sam3Processor]:
    """A randomly initialised tiny Sam3Model (eval mode) and its processor; same seed, same weights."""
    processor = tiny_processor()
    tok = processor.tokenizer
    config = tiny_config(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    # fork_rng: seeding must not disturb the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3Model(config)
    return model.eval(), processor


MODEL_PRESETS: dict[str, Callable[..., tuple[Sam3Model, Sam3Processor]]] = {
    "tiny": build_tiny,
}


def config_hash(config: Sam3Config) -> str:
    """sha256 of the config as canonical JSON, ignoring the transformers version that wrote it."""
    data = config.to_dict()
    data.pop("transformers_version", None)
    canonical = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# ----------------------------------------------------------------------------------------------
# Save
# ----------------------------------------------------------------------------------------------


def _checkpoint_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST_NAME)


def write_manifest(folder: str | Path, manifest: dict, *, config: Sam3Config | None = None) -> dict:
    """(Re)write ``folder/manifest.json``: ``manifest`` merged with provenance and every file's sha256."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): sha256_of(p) for p in _checkpoint_files(folder)}
    full = dict(manifest)
    full.update({
        "format": CHECKPOINT_FORMAT,
        "model_class": "Sam3Model",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "code_version": code_version(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": files,
    })
    if config is not None:
        full["config_hash"] = config_hash(config)
    # Default version: content-addressed by the weights, so two different checkpoints never share one.
    weights = files.get("model.safetensors")
    if "model_version" not in full and weights:
        full["model_version"] = f"sam3-{weights[:16]}"
    (folder / MANIFEST_NAME).write_text(json.dumps(full, indent=2, sort_keys=True))
    return full


def save_checkpoint(model: Sam3Model, processor: Sam3Processor, folder: str | Path, *, manifest: dict) -> Path:
    """Save weights (safetensors), config, processor and manifest.json into ``folder``; return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    write_manifest(folder, manifest, config=model.config)
    return folder


# ----------------------------------------------------------------------------------------------
# Load
# ----------------------------------------------------------------------------------------------


def verify_checkpoint(folder: str | Path, *, checkpoint_format: str = CHECKPOINT_FORMAT,
                      error: type[Exception] = CheckpointError, files: Callable[[Path], list[Path]] | None = None,
                      what: str = "checkpoint") -> dict:
    """Check manifest.json and every file's sha256; return the manifest. Raises ``error`` (CheckpointError).

    The verifiers' checkpoints use the same layout with their own format name and error class.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise error(f"{folder} has no {MANIFEST_NAME}: not a {what} written by this project")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise error(f"{path} is not valid JSON: {exc}") from exc
    if manifest.get("format") != checkpoint_format or not isinstance(manifest.get("files"), dict):
        raise error(f"{path}: unknown checkpoint format {manifest.get('format')!r}")
    listed = manifest["files"]
    present = {p.relative_to(folder).as_posix() for p in (files or _checkpoint_files)(folder)}
    if missing := sorted(set(listed) - present):
        raise error(f"{what} {folder} is incomplete: missing {missing}")
    if extra := sorted(present - set(listed)):
        raise error(f"{what} {folder} has files its manifest does not list: {extra}")
    for name, expected in sorted(listed.items()):
        actual = sha256_of(folder / name)
        if actual != expected:
            raise error(f"{what} {folder}: sha256 of {name} is {actual}, manifest says {expected} "
                        "(corrupt or tampered)")
    return manifest


def _load_verified(folder: Path, *, uri: str, manifest: dict) -> LoadedModel:
    try:
        model, info = Sam3Model.from_pretrained(
            str(folder), output_loading_info=True, local_files_only=True, use_safetensors=True
        )
        processor = Sam3Processor.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"cannot load checkpoint {uri}: {exc}") from exc
    problems = []
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(key):
            problems.append(f"{key}: {sorted(map(str, info[key]))[:10]}")
    if problems:
        raise CheckpointError(f"checkpoint {uri} does not match Sam3Model exactly: " + "; ".join(problems))
    if len(processor.tokenizer) > model.config.text_config.vocab_size:
        raise CheckpointError(
            f"checkpoint {uri}: tokenizer has {len(processor.tokenizer)} tokens but the text encoder only "
            f"{model.config.text_config.vocab_size}"
        )
    # Weights come back as views into the safetensors file at unaligned offsets, and CPU matmul kernels then
    # round differently (~1e-8): own, aligned copies make a loaded model bit-identical to the saved one.
    with torch.no_grad():
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            tensor.data = tensor.data.clone()
    version = str(manifest.get("model_version") or uri)
    return LoadedModel(model=model.eval(), processor=processor, manifest=manifest, uri=uri, version=version)


def _download_s3_prefix(uri: str, dest: Path, s3_client: Any) -> None:
    """Copy every object under ``s3://bucket/prefix/`` into ``dest`` (created)."""
    from botocore.exceptions import BotoCoreError, ClientError

    parsed = urllib.parse.urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    if not bucket or not prefix:
        raise CheckpointError(f"{uri!r}: expected s3://bucket/prefix")
    try:
        keys = []
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        if not keys:
            raise CheckpointError(f"no checkpoint at {uri}: the prefix holds no objects")
        for key in keys:
            relative = Path(key[len(prefix) + 1 :])
            if relative.is_absolute() or ".." in relative.parts or not relative.parts:
                raise CheckpointError(f"refusing object key {key!r} under {uri}")
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            s3_client.download_file(bucket, key, str(target))
    except (BotoCoreError, ClientError) as exc:
        raise CheckpointError(f"cannot download checkpoint {uri}: {exc}") from exc


def fetch_s3_checkpoint(uri: str, *, cache_dir: Path, s3_client: Any, verify: Callable[[Path], dict] | None = None,
                        error: type[Exception] | None = None, subdir: str = "s3") -> Path:
    """The verified local copy of an s3:// checkpoint, downloaded once into ``cache_dir/subdir/<hash of uri>``.

    ``verify`` checks a folder (default: a SAM 3 checkpoint) and raises ``error`` (default CheckpointError);
    a download failure is raised as ``error`` too. A damaged cache entry is fetched again.
    """
    verify = verify or verify_checkpoint
    error = error or CheckpointError
    if s3_client is None:
        raise error(f"{uri}: an S3 client is needed to load from s3://")
    cached = Path(cache_dir) / subdir / hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:32]
    if cached.is_dir():
        try:
            verify(cached)
            return cached
        except error:
            shutil.rmtree(cached)
    cached.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=cached.parent))
    try:
        try:
            _download_s3_prefix(uri, staging, s3_client)
        except CheckpointError as exc:
            raise error(str(exc)) from exc
        verify(staging)
        try:
            os.rename(staging, cached)  # atomic publish; a concurrent worker may have won the race
        except OSError:
            if not cached.is_dir():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return cached


def load_checkpoint(uri: str, *, cache_dir: str | Path, s3_client: Any = None) -> LoadedModel:
    """Load a verified checkpoint from a folder path, ``file://`` URI or ``s3://bucket/prefix``.

    s3 checkpoints are downloaded once into ``cache_dir/s3/<hash of uri>``. Raises CheckpointError when
    the URI is unreachable, a file's sha256 differs from the manifest, or weights are missing/unexpected.
    """
    folder = checkpoint_folder(uri, cache_dir=cache_dir, s3_client=s3_client)
    manifest = verify_checkpoint(folder)
    return _load_verified(folder, uri=uri, manifest=manifest)


def checkpoint_folder(uri: str, *, cache_dir: str | Path, s3_client: Any = None, error: type[Exception] | None = None,
                      what: str = "checkpoint", **fetch: Any) -> Path:
    """The local folder of a checkpoint URI: a path, ``file://`` or ``s3://`` (fetched by ``fetch_s3_checkpoint``
    with ``fetch`` options). Raises ``error`` (default CheckpointError) for another scheme or a missing folder."""
    error = error or CheckpointError
    if uri.startswith("s3://"):
        folder = fetch_s3_checkpoint(uri, cache_dir=Path(cache_dir), s3_client=s3_client, error=error, **fetch)
    elif uri.startswith("file://"):
        folder = Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path))
    elif "://" in uri or uri.startswith("preset:"):
        raise error(f"unsupported {what} URI {uri!r} (expected a path, file:// or s3://)")
    else:
        folder = Path(uri)
    if not folder.is_dir():
        raise error(f"no {what} folder at {uri}")
    return folder


def load_preset(uri: str) -> LoadedModel:
    """Build a preset in-process: ``preset:<name>`` or ``preset:<name>?seed=<int>`` (random weights)."""
    parsed = urllib.parse.urlparse(uri)
    name = parsed.path
    if parsed.scheme != "preset" or name not in MODEL_PRESETS:
        raise CheckpointError(f"unknown model preset {uri!r}; known: {sorted(MODEL_PRESETS)}")
    query = urllib.parse.parse_qs(parsed.query)
    try:
        seed = int(query.get("seed", ["0"])[0])
    except ValueError as exc:
        raise CheckpointError(f"{uri!r}: seed must be an integer") from exc
    model, processor = MODEL_PRESETS[name](seed=seed)
    manifest = {"preset": name, "seed": seed, "config_hash": config_hash(model.config), "model_version": uri}
    return LoadedModel(model=model, processor=processor, manifest=manifest, uri=uri, version=uri)


def resolve_model(uri: str, *, cache_dir: str | Path, s3_client: Any = None) -> LoadedModel:
    """``preset:...`` builds a preset; anything else is a checkpoint (see load_checkpoint)."""
    if uri.startswith("preset:"):
        return load_preset(uri)
    return load_checkpoint(uri, cache_dir=cache_dir, s3_client=s3_client)
