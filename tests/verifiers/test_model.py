"""The verifier model: option-letter scoring, batching, adapters per task, strict checkpoints from a folder or S3."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from verifiers.errors import VerifierInputError, VerifierModelError
from verifiers.model import (
    EVItem,
    MVItem,
    build_tiny_verifier,
    encode,
    load_verifier,
    option_logits,
    rescale_render,
    save_verifier,
)
from verifiers.options import EV_OPTIONS, MV_OPTIONS
from verifiers.render import EV_BOX_COLOUR
from verifiers.prompts import template_for


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    return load_verifier(str(tiny_checkpoint), cache_dir="/nonexistent")


def test_tiny_verifier_is_mllama_with_a_lora_adapter_per_task():
    from peft import PeftModel
    from transformers import MllamaForConditionalGeneration

    verifier = build_tiny_verifier(seed=0)
    assert isinstance(verifier.model, PeftModel)
    assert isinstance(verifier.model.get_base_model(), MllamaForConditionalGeneration)
    assert set(verifier.model.peft_config) == {"mv", "ev"}
    config = verifier.model.get_base_model().config
    assert config.image_token_index == config.text_config.vocab_size
    assert config.text_config.pad_token_id < config.text_config.vocab_size
    assert sum(p.numel() for p in verifier.model.parameters()) < 3_000_000


def test_scores_are_probabilities_over_the_options(tiny, scene_image, scene_rles):
    mv = tiny.score_mv([MVItem(scene_image, r, "yellow square") for r in scene_rles])
    ev = tiny.score_ev([EVItem(scene_image, scene_rles, "yellow shape"), EVItem(scene_image, [], "dog")])
    assert len(mv) == 2 and len(ev) == 2
    for row, options in [(mv[0], MV_OPTIONS), (mv[1], MV_OPTIONS), (ev[0], EV_OPTIONS), (ev[1], EV_OPTIONS)]:
        assert tuple(row) == options and math.isclose(sum(row.values()), 1.0, abs_tol=1e-5)
    assert tiny.presence(scene_image, "dog") == pytest.approx(1 - ev[1]["accept"], abs=1e-6)


def test_batched_scores_equal_one_at_a_time(tiny, scene_image, scene_rles):
    items = [MVItem(scene_image, scene_rles[i % 2], p) for i, p in enumerate(["circle", "yellow square", "it"])]
    batched = tiny.score_mv(items)
    for item, row in zip(items, batched):
        single = tiny.score_mv([item])[0]
        assert all(abs(single[k] - row[k]) < 1e-5 for k in row)


def test_shared_prefix_cache_gives_the_same_logits_as_a_full_pass(tiny, scene_image, scene_rles):
    from verifiers.render import render_mv

    images = [render_mv(scene_image, r, "x", size=tiny.render_size) for r in scene_rles]
    texts = [template_for("mv").render(phrase=p, order=MV_OPTIONS) for p in ("yellow square", "large dotted circle")]
    inputs = encode(tiny.processor, images, texts)
    with torch.no_grad():
        full = option_logits(tiny.model, inputs, tiny.letter_ids, 5)
        cached = option_logits(tiny.model, inputs, tiny.letter_ids, 5, image_token_id=tiny.image_token_id)
    assert torch.allclose(full, cached, atol=1e-5)


def test_stored_temperature_is_applied(tiny_checkpoint, tiny, scene_image, scene_rles):
    assert tiny.manifest["temperature"] == {"mv": 1.5, "ev": 0.8}
    assert tiny.manifest["thresholds"] == {"mv": 0.9, "ev": None}
    logits = tiny.raw_logits("mv", [__import__("verifiers.render", fromlist=["render_mv"]).render_mv(
        scene_image, scene_rles[0], "x", size=tiny.render_size)],
        [tiny.question("mv", "square")])
    expected = torch.softmax(logits / 1.5, dim=-1)[0]
    got = tiny.score_mv([MVItem(scene_image, scene_rles[0], "square")])[0]
    assert [round(got[o], 5) for o in MV_OPTIONS] == [round(float(p), 5) for p in expected]


def test_adapters_are_per_task(tiny, scene_image, scene_rles):
    # Perturb only the EV adapter: MV scores must not move, EV scores must.
    mv_before = tiny.score_mv([MVItem(scene_image, scene_rles[0], "square")])
    ev_before = tiny.score_ev([EVItem(scene_image, [], "square")])
    with torch.no_grad():
        saved = {}
        for name, param in tiny.model.named_parameters():
            if "lora_B" in name and ".ev." in name:
                saved[name] = param.clone()
                param.add_(0.5)
        try:
            assert tiny.score_mv([MVItem(scene_image, scene_rles[0], "square")]) == mv_before
            assert tiny.score_ev([EVItem(scene_image, [], "square")]) != ev_before
        finally:
            for name, param in tiny.model.named_parameters():
                if name in saved:
                    param.copy_(saved[name])


def test_save_and_load_round_trip_exactly(tmp_path, tiny, scene_image, scene_rles):
    folder = tmp_path / "copy"
    save_verifier(tiny, folder, manifest={"model_version": "copy-v1"})
    again = load_verifier(f"file://{folder}", cache_dir=tmp_path)
    item = [MVItem(scene_image, scene_rles[1], "yellow circle")]
    assert again.version == "copy-v1" and again.score_mv(item) == tiny.score_mv(item)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"base/model.safetensors", "adapters/mv/adapter_model.safetensors",
            "adapters/ev/adapter_model.safetensors"} <= set(manifest["files"])
    assert manifest["template_versions"] == {"mv": "mv.v1", "ev": "ev.v2"}
    assert manifest["peft_version"] and manifest["code_version"]


def test_a_larger_render_starts_where_the_smaller_one_was_and_survives_a_save(tmp_path, tiny_checkpoint, scene_image,
                                                                              scene_rles):
    verifier = load_verifier(str(tiny_checkpoint), cache_dir=tmp_path)
    vision = verifier.model.get_base_model().model.vision_model
    pixels = torch.rand(1, 3, 112, 112)
    with torch.no_grad():
        before = vision.patch_embedding(pixels)
    with pytest.raises(ValueError, match="not a whole multiple"):
        rescale_render(verifier, 200)
    rescale_render(verifier, 224)
    # The 224-px kernel on a 224-px image whose 2 x 2 blocks repeat a 112-px one: the 112-px kernel's patches.
    with torch.no_grad():
        after = vision.patch_embedding(pixels.repeat_interleave(2, 2).repeat_interleave(2, 3))
    assert after.shape == before.shape == (1, 128, 7, 7)
    assert torch.allclose(after, before, atol=1e-5)
    items = [MVItem(scene_image, scene_rles[1], "yellow circle")]
    scores = verifier.score_mv(items)
    save_verifier(verifier, tmp_path / "at224", manifest={"model_version": "at224-v1"})
    again = load_verifier(str(tmp_path / "at224"), cache_dir=tmp_path)
    assert again.render_size == 224 and again.manifest["render_size"] == 224
    assert again.processor.image_processor.size["height"] == 224
    assert again.score_mv(items) == scores


def test_the_fit_with_sam3s_witnesses_is_part_of_the_version_name(tmp_path, tiny_checkpoint):
    from verifiers.model import write_manifest

    folder = tmp_path / "copy"
    shutil.copytree(tiny_checkpoint, folder)
    calibrated = {"temperature": {"mv": 1.0, "ev": 1.0}, "thresholds": {"ev_zero": 0.9}, "target_precision": 0.98}
    plain = write_manifest(folder, dict(calibrated))["model_version"]
    assert write_manifest(folder, {**calibrated, "absence_with_sam3": None})["model_version"] == plain
    stacked = write_manifest(folder, {**calibrated, "absence_with_sam3": {
        "p_accept_logit": 1.0, "sam3_presence_logit": -1.0, "bias": 0.0}})["model_version"]
    assert stacked != plain  # the same weights and thresholds judge absence differently
    witnesses = write_manifest(folder, {**calibrated, "with_sam3": {"ev_zero": {
        "p_accept_logit": 1.0, "sam3_presence_logit": -1.0, "sam3_best_unboxed_logit": -1.0, "bias": 0.0}}})
    assert witnesses["model_version"] not in (plain, stacked)
    assert write_manifest(folder, {**calibrated, "with_sam3": {}})["model_version"] == plain


def test_a_verifier_asks_and_draws_as_its_templates_say(tmp_path, tiny_checkpoint, scene_image, scene_rles):
    # A verifier trained on ev.v1 (thin boxes) keeps seeing thin boxes after ev.v2 became current.
    current = load_verifier(str(tiny_checkpoint), cache_dir=tmp_path)
    old_folder = tmp_path / "old"
    shutil.copytree(tiny_checkpoint, old_folder)
    manifest = json.loads((old_folder / "manifest.json").read_text())
    manifest["template_versions"] = {"mv": "mv.v1", "ev": "ev.v1"}
    (old_folder / "manifest.json").write_text(json.dumps(manifest))
    old = load_verifier(str(old_folder), cache_dir=tmp_path)
    assert old.template("ev").version == "ev.v1" and current.template("ev").version == "ev.v2"
    seen = {}
    for name, verifier in (("old", old), ("current", current)):
        def spy(task, images, texts, raw=verifier.raw_logits, name=name):
            seen[name] = np.asarray(images[0])
            return raw(task, images, texts)
        verifier.raw_logits = spy
        verifier.score_ev([EVItem(scene_image, scene_rles[:1], "yellow shape")])
    red = {name: int((image == EV_BOX_COLOUR).all(axis=-1).sum()) for name, image in seen.items()}
    assert red["current"] > 1.8 * red["old"] > 0  # the same box, drawn 4 px wide instead of 2


def test_tampered_incomplete_or_missing_checkpoints_are_refused(tmp_path, tiny_checkpoint):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    with open(broken / "adapters" / "ev" / "adapter_model.safetensors", "r+b") as handle:
        handle.seek(200)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(VerifierModelError, match="sha256"):
        load_verifier(str(broken), cache_dir=tmp_path)
    (broken / "adapters" / "ev" / "adapter_model.safetensors").unlink()
    with pytest.raises(VerifierModelError, match="incomplete"):
        load_verifier(str(broken), cache_dir=tmp_path)
    with pytest.raises(VerifierModelError, match="no verifier checkpoint"):
        load_verifier(str(tmp_path / "nowhere"), cache_dir=tmp_path)
    with pytest.raises(VerifierModelError):
        load_verifier("https://example.com/model", cache_dir=tmp_path)
    with pytest.raises(VerifierModelError, match="S3 client"):
        load_verifier("s3://bucket/models/v1", cache_dir=tmp_path)


def test_readme_beside_the_weights_is_not_hashed(tmp_path, tiny_checkpoint):
    folder = tmp_path / "with-readme"
    shutil.copytree(tiny_checkpoint, folder)
    (folder / "README.md").write_text("# notes, edited after training\n")
    assert load_verifier(str(folder), cache_dir=tmp_path).version == "verifier-tiny-v1"


def test_bad_items_are_input_errors(tiny, scene_image, scene_rles):
    with pytest.raises(VerifierInputError):
        tiny.score_mv([MVItem(scene_image, scene_rles[0], "")])
    with pytest.raises(VerifierInputError, match="characters"):
        tiny.score_ev([EVItem(scene_image, [], "very " * 60 + "long phrase")])


@pytest.mark.s3
def test_loads_from_s3_once_into_the_cache(s3_server, tiny_checkpoint, tmp_path, scene_image):
    client = s3_server.client()
    bucket = s3_server.create_bucket("verifiers")
    for path in tiny_checkpoint.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"models/tiny-v1/{path.relative_to(tiny_checkpoint).as_posix()}")
    verifier = load_verifier(f"s3://{bucket}/models/tiny-v1", cache_dir=tmp_path, s3_client=client)
    assert verifier.version == "verifier-tiny-v1"
    assert len(list((tmp_path / "verifiers").iterdir())) == 1
    with pytest.raises(VerifierModelError):
        load_verifier(f"s3://{bucket}/models/none", cache_dir=tmp_path, s3_client=client)
