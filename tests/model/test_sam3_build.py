"""Tiny SAM 3 presets, the offline tokenizer, and checkpoints that load exactly or not at all."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from model.sam3.build import (
    MANIFEST_NAME,
    MODEL_PRESETS,
    CheckpointError,
    build_tiny,
    load_checkpoint,
    resolve_model,
    save_checkpoint,
    write_manifest,
)
from model.sam3.tokenizer import known_words
from model.synthetic import phrase_vocabulary


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def tiny():
    return build_tiny(seed=0)


@pytest.fixture(scope="module")
def checkpoint(tiny, tmp_path_factory):
    model, processor = tiny
    folder = tmp_path_factory.mktemp("ckpt") / "tiny-0"
    save_checkpoint(model, processor, folder, manifest={"model_version": "tiny-test-1", "trained_steps": 0})
    return folder


def copy_of(checkpoint, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(checkpoint, target)
    return target


def forward(model, processor):
    inputs = processor(images=torch.zeros(3, 100, 150, dtype=torch.uint8), text=["red circle"], return_tensors="pt")
    with torch.inference_mode():
        return model(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"],
                     attention_mask=inputs["attention_mask"])


def test_build_tiny_is_deterministic_per_seed_and_leaves_global_rng_alone(tiny):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again, _ = build_tiny(seed=0)
    assert torch.equal(torch.rand(3), expected)
    assert same_weights(tiny[0], again)
    assert not same_weights(tiny[0], build_tiny(seed=1)[0])
    assert not tiny[0].training
    assert MODEL_PRESETS["tiny"] is build_tiny
    assert sum(p.numel() for p in tiny[0].parameters()) < 2_000_000


def test_tokenizer_has_one_token_per_world_word_and_falls_back_to_bytes(tiny):
    _, processor = tiny
    tokenizer = processor.tokenizer
    words = {w for domain in ("shapes", "heldout") for p in phrase_vocabulary(domain) for w in p.split()}
    assert words <= set(known_words())
    for word in words:
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word
    ids = tokenizer("zebra crossing ü")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.unk_token_id not in ids[1:-1] and len(ids) > 5  # byte pieces, not unknowns
    assert tokenizer.decode(ids, skip_special_tokens=True) == "zebra crossing ü"
    assert len(tokenizer) <= tiny[0].config.text_config.vocab_size


def test_save_and_load_round_trip_gives_identical_outputs(tiny, checkpoint, tmp_path):
    model, processor = tiny
    loaded = load_checkpoint(str(checkpoint), cache_dir=tmp_path)
    assert same_weights(model, loaded.model) and not loaded.model.training
    assert loaded.version == "tiny-test-1" and loaded.uri == str(checkpoint)
    a, b = forward(model, processor), forward(loaded.model, loaded.processor)
    for name in ("pred_masks", "pred_boxes", "pred_logits", "presence_logits"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for word in ("striped", "hexagon"):  # the reloaded tokenizer keeps its merges
        assert len(loaded.processor.tokenizer(word, add_special_tokens=False)["input_ids"]) == 1
    manifest = loaded.manifest
    assert manifest["trained_steps"] == 0 and manifest["format"].startswith("dataengine.sam3-checkpoint")
    for key in ("transformers_version", "torch_version", "code_version", "config_hash", "created_at"):
        assert manifest[key]
    assert set(manifest["files"]) >= {"model.safetensors", "config.json"} and MANIFEST_NAME not in manifest["files"]
    assert load_checkpoint(checkpoint.as_uri(), cache_dir=tmp_path).version == "tiny-test-1"


@pytest.mark.parametrize("change", ["rename", "extra", "drop"])
def test_strict_loading_refuses_missing_or_unexpected_keys(checkpoint, tmp_path, change):
    folder = copy_of(checkpoint, tmp_path)
    weights = load_file(folder / "model.safetensors")
    key = sorted(weights)[0]
    if change == "rename":
        weights[key + "_renamed"] = weights.pop(key)
    elif change == "extra":
        weights["extra_head.weight"] = torch.zeros(2, 2)
    else:
        weights.pop(key)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    write_manifest(folder, json.loads((folder / MANIFEST_NAME).read_text()))  # re-seal: only the keys are wrong
    with pytest.raises(CheckpointError, match="missing_keys|unexpected_keys"):
        load_checkpoint(str(folder), cache_dir=tmp_path)


def test_tampered_or_incomplete_checkpoints_are_refused(checkpoint, tmp_path):
    folder = copy_of(checkpoint, tmp_path)
    config = folder / "config.json"
    config.write_text(config.read_text().replace('"num_queries": 20', '"num_queries": 21'))
    with pytest.raises(CheckpointError, match="sha256 of config.json"):
        load_checkpoint(str(folder), cache_dir=tmp_path)
    shutil.copy(checkpoint / "config.json", config)
    (folder / "stray.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="does not list"):
        load_checkpoint(str(folder), cache_dir=tmp_path)
    (folder / "stray.bin").unlink()
    (folder / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(str(folder), cache_dir=tmp_path)
    (folder / MANIFEST_NAME).unlink()
    with pytest.raises(CheckpointError, match="no manifest.json"):
        load_checkpoint(str(folder), cache_dir=tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        load_checkpoint(str(tmp_path / "absent"), cache_dir=tmp_path)


def test_presets_resolve_in_process(tiny, tmp_path):
    loaded = resolve_model("preset:tiny", cache_dir=tmp_path)
    assert same_weights(loaded.model, tiny[0]) and loaded.version == "preset:tiny"
    assert same_weights(resolve_model("preset:tiny?seed=3", cache_dir=tmp_path).model, build_tiny(seed=3)[0])
    with pytest.raises(CheckpointError, match="unknown model preset"):
        resolve_model("preset:huge", cache_dir=tmp_path)


def _upload(client, bucket: str, folder, prefix: str) -> None:
    for path in sorted(folder.iterdir()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.name}")


@pytest.mark.s3
def test_loads_from_s3_once_into_the_cache(tiny, checkpoint, s3_server, tmp_path):
    client = s3_server.client()
    bucket = s3_server.create_bucket("models")
    _upload(client, bucket, checkpoint, "sam3/tiny-0")
    downloads = []
    real_download = client.download_file

    def counting_download(*args, **kwargs):
        downloads.append(args[1])
        return real_download(*args, **kwargs)

    client.download_file = counting_download
    uri = f"s3://{bucket}/sam3/tiny-0"
    loaded = load_checkpoint(uri, cache_dir=tmp_path / "cache", s3_client=client)
    assert same_weights(loaded.model, tiny[0]) and loaded.version == "tiny-test-1" and loaded.uri == uri
    first = len(downloads)
    assert first == len(list(checkpoint.iterdir()))
    load_checkpoint(uri, cache_dir=tmp_path / "cache", s3_client=client)
    assert len(downloads) == first  # served from the verified cache
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(f"s3://{bucket}/sam3/absent", cache_dir=tmp_path / "cache", s3_client=client)


@pytest.mark.s3
def test_s3_checkpoint_with_wrong_sha256_is_refused(checkpoint, s3_server, tmp_path):
    client = s3_server.client()
    bucket = s3_server.create_bucket("models")
    _upload(client, bucket, checkpoint, "bad")
    manifest = json.loads((checkpoint / MANIFEST_NAME).read_text())
    manifest["files"]["model.safetensors"] = "0" * 64
    client.put_object(Bucket=bucket, Key=f"bad/{MANIFEST_NAME}", Body=json.dumps(manifest).encode())
    with pytest.raises(CheckpointError, match="sha256 of model.safetensors"):
        load_checkpoint(f"s3://{bucket}/bad", cache_dir=tmp_path, s3_client=client)
    assert not any((tmp_path / "s3").iterdir())  # nothing unverified is left in the cache


def test_unreachable_s3_endpoint_is_a_checkpoint_error(tmp_path):
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url="http://127.0.0.1:9", aws_access_key_id="x", aws_secret_access_key="y",
                          region_name="us-east-1", config=Config(connect_timeout=1, retries={"max_attempts": 1}))
    with pytest.raises(CheckpointError, match="cannot download"):
        load_checkpoint("s3://models/tiny", cache_dir=tmp_path, s3_client=client)
    with pytest.raises(CheckpointError, match="S3 client"):
        load_checkpoint("s3://models/tiny", cache_dir=tmp_path)


@pytest.mark.s3
def test_s3_with_a_wrong_secret_is_a_checkpoint_error(checkpoint, s3_server, tmp_path):
    bucket = s3_server.create_bucket("models")
    _upload(s3_server.client(), bucket, checkpoint, "ok")
    with pytest.raises(CheckpointError, match="cannot download"):
        load_checkpoint(f"s3://{bucket}/ok", cache_dir=tmp_path, s3_client=s3_server.client(secret_key="wrong"))
