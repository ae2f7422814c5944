"""The PCS loss on hand-made cases, a few real training steps, LoRA adapters, and the train task end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.sam3.build import MANIFEST_NAME, load_checkpoint
from model.synthetic import generate_world
from model.training.data import Curriculum, SyntheticScenes, collate
from model.training.lora import LoraSettings, apply_lora, load_adapter, save_adapter
from model.training.loss import LossConfig, Targets, batched_match, hungarian_match, pcs_loss
from model.training.modeling import ArchConfig, build_from_scratch, forward_pcs
from model.training.trainer import query_diversity
from workers.train import TASK_NAME, finetune_for

# 64-px input, patch 8: an 8x8 grid and 32x32 masks; fast enough for unit tests.
TINY = ArchConfig(image_size=64, patch_size=8, hidden_size=32, vit_layers=2, decoder_layers=2, num_queries=6)
TINY_CONFIG = {"arch": TINY.__dict__, "steps": 3, "scenes_per_batch": 2, "phrases_per_scene": 2, "warmup_steps": 1,
               "eval_scenes": 2, "eval_every": 3, "checkpoint_every": 3, "log_every": 1, "render_size": 112}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def box(x0, y0, x1, y1):
    return torch.tensor([[x0, y0, x1, y1]], dtype=torch.float32)


def perfect_outputs(n_layers=2, n_queries=4, size=16):
    """One positive pair whose instance (a square) query 2 predicts exactly; other queries are confidently off."""
    target_mask = torch.zeros(1, size, size)
    target_mask[0, 4:12, 4:12] = 1.0
    target_box = box(0.25, 0.25, 0.75, 0.75)
    logits = torch.full((n_layers, 1, n_queries), -30.0)
    logits[:, 0, 2] = 30.0
    boxes = torch.tensor([0.0, 0.0, 0.1, 0.1]).repeat(n_layers, 1, n_queries, 1)
    boxes[:, 0, 2] = target_box[0]
    masks = torch.full((1, n_queries, size, size), -30.0)
    masks[0, 2] = target_mask[0] * 60.0 - 30.0
    outputs = {"logits": logits, "boxes": boxes, "presence": torch.full((n_layers, 1, 1), 30.0), "masks": masks,
               "semantic": (target_mask * 60.0 - 30.0)[None]}
    return outputs, Targets(masks=[target_mask], boxes=[target_box])


def test_perfect_prediction_has_near_zero_loss():
    outputs, targets = perfect_outputs()
    terms = pcs_loss(outputs, targets, LossConfig())
    for name in ("class", "box_l1", "box_giou", "mask_focal", "presence", "aux"):
        assert terms[name].item() < 1e-4, name
    # Dice has +1 smoothing: tiny but not zero.
    assert terms["mask_dice"].item() < 0.02 and terms["semantic"].item() < 0.02


def test_a_wrong_box_costs_more_than_a_right_one():
    outputs, targets = perfect_outputs()
    good = pcs_loss(outputs, targets, LossConfig())["total"]
    outputs["boxes"][:, 0, 2] = torch.tensor([0.5, 0.5, 0.9, 0.9])
    assert pcs_loss(outputs, targets, LossConfig())["total"] > good + 1.0


def test_hungarian_matching_picks_the_queries_that_fit():
    config = LossConfig()
    targets = torch.cat([box(0.1, 0.1, 0.3, 0.3), box(0.6, 0.6, 0.9, 0.8)])
    boxes = torch.tensor([[0.4, 0.4, 0.5, 0.5]] * 8)
    boxes[3] = targets[1]
    boxes[6] = targets[0] + 0.01
    rows, cols = hungarian_match(torch.zeros(8), boxes, targets, config)
    assert dict(zip(rows.tolist(), cols.tolist())) == {3: 1, 6: 0}


def test_batched_matching_equals_matching_each_pair_alone():
    generator = torch.Generator().manual_seed(0)
    config, counts, n_queries, size = LossConfig(), [1, 4, 2], 8, 6

    def random_boxes(*shape):
        corners = torch.rand(*shape, 2, 2, generator=generator).sort(dim=-2).values
        return corners.transpose(-1, -2).reshape(*shape, 4)[..., [0, 2, 1, 3]]

    logits = torch.randn(len(counts), n_queries, generator=generator)
    boxes = random_boxes(len(counts), n_queries)
    masks = torch.randn(len(counts), n_queries, size * size, generator=generator)
    target_boxes = torch.zeros(len(counts), max(counts), 4)
    target_masks = torch.zeros(len(counts), max(counts), size * size)
    for i, n in enumerate(counts):
        target_boxes[i, :n] = random_boxes(n)
        target_masks[i, :n] = (torch.rand(n, size * size, generator=generator) > 0.5).float()
    batched = batched_match(logits, boxes, target_boxes, counts, config, masks, target_masks)
    for i, n in enumerate(counts):
        rows, cols = hungarian_match(logits[i], boxes[i], target_boxes[i, :n], config,
                                     masks[i].reshape(n_queries, size, size),
                                     target_masks[i, :n].reshape(n, size, size))
        assert batched[i][0].tolist() == rows.tolist() and batched[i][1].tolist() == cols.tolist()


@pytest.fixture(scope="module")
def tiny_model():
    return build_from_scratch(TINY, seed=0)


def synthetic_batch(processor, *, negative_fraction: float, seed: int = 3, scenes: int = 2):
    curriculum = Curriculum(start=negative_fraction, end=negative_fraction, steps=0, hard_share=0.5)
    data = SyntheticScenes(seed=seed, size=112, scenes_per_batch=scenes, phrases_per_scene=3, curriculum=curriculum)
    return collate(data.batch(0), processor.tokenizer, image_size=TINY.image_size, mask_size=32)


def test_a_model_from_scratch_starts_its_queries_on_distinct_boxes_across_the_image(tiny_model):
    model, processor = tiny_model
    batch = synthetic_batch(processor, negative_fraction=0.0)
    with torch.no_grad():
        boxes = forward_pcs(model.eval(), batch.pixel_values, batch.scene_index, batch.input_ids,
                            batch.attention_mask)["boxes"][0, 0]  # first decoder layer's boxes, one pair
    model.train()
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert len({tuple(c) for c in centres.round(decimals=2).tolist()}) == TINY.num_queries
    assert centres.min() < 0.25 and centres.max() > 0.75, "the starting boxes cover the image"


def test_the_collapse_diagnostic_reads_zero_when_every_query_is_the_same_vector():
    model, processor = build_from_scratch(TINY, seed=4)
    batch = synthetic_batch(processor, negative_fraction=0.0)
    healthy = query_diversity(model.eval(), batch, torch.device("cpu"))
    with torch.no_grad():  # a decoder whose output no longer depends on the query or the image
        model.detr_decoder.output_layer_norm.weight.zero_()
    collapsed = query_diversity(model, batch, torch.device("cpu"))
    assert healthy["query_logit_spread"] > 0.001
    assert collapsed == {"query_logit_spread": 0.0, "box_spread_over_images": 0.0}


def test_negative_pairs_train_only_the_presence_head(tiny_model):
    model, processor = tiny_model
    batch = synthetic_batch(processor, negative_fraction=1.0)
    assert not batch.targets.positive.any()
    model.zero_grad(set_to_none=True)
    outputs = forward_pcs(model, batch.pixel_values, batch.scene_index, batch.input_ids, batch.attention_mask)
    pcs_loss(outputs, batch.targets, LossConfig())["total"].backward()

    def grad_norm(module):
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    assert grad_norm(model.dot_product_scoring) == 0.0
    assert grad_norm(model.mask_decoder) == 0.0
    assert grad_norm(model.detr_decoder.box_head) == 0.0
    assert grad_norm(model.detr_decoder.presence_head) > 0.0
    model.zero_grad(set_to_none=True)


def test_a_few_steps_reduce_the_loss():
    model, processor = build_from_scratch(TINY, seed=1)
    batch = synthetic_batch(processor, negative_fraction=0.3, seed=5)
    assert batch.targets.positive.any()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        outputs = forward_pcs(model, batch.pixel_values, batch.scene_index, batch.input_ids, batch.attention_mask)
        loss = pcs_loss(outputs, batch.targets, LossConfig())["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0]


def test_lora_adapters_save_and_reload_exactly(tmp_path):
    model, processor = build_from_scratch(TINY, seed=2)
    peft_model = apply_lora(model, LoraSettings(rank=4, alpha=8))
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "dot_product_scoring" in n for n in trainable)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn_like(param))
    save_adapter(peft_model, tmp_path / "adapter")
    reloaded = load_adapter(build_from_scratch(TINY, seed=2)[0], tmp_path / "adapter").eval()
    peft_model.eval()
    batch = synthetic_batch(processor, negative_fraction=0.5)
    with torch.no_grad():
        args = (batch.pixel_values, batch.scene_index, batch.input_ids, batch.attention_mask)
        a = forward_pcs(peft_model.base_model.model, *args)
        b = forward_pcs(reloaded.base_model.model, *args)
    for key in ("logits", "boxes", "presence", "masks"):
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_train_task_writes_the_artifact_and_returns_its_manifest(tmp_path):
    payload = {"base_model_uri": "scratch", "output_uri": str(tmp_path / "artifact"), "annotations_uri": None,
               "config": {**TINY_CONFIG, "work_dir": str(tmp_path / "work")}}
    result = finetune_for(json.loads(json.dumps(payload)))
    assert result["error"] is None and result["task"] == TASK_NAME
    manifest = result["manifest"]
    assert json.loads((tmp_path / "artifact" / MANIFEST_NAME).read_text())["files"] == manifest["files"]
    assert manifest["base_model_version"] == "scratch" and manifest["code_version"]
    assert manifest["data"]["kind"] == "synthetic" and manifest["train_config"]["steps"] == 3
    assert set(result["metrics"]) >= {"cgF1", "pmF1", "IL_MCC"}
    assert [p["step"] for p in manifest["learning_curve"]] == [3]
    assert "query_logit_spread" in manifest["learning_curve"][0]["eval"]
    loaded = load_checkpoint(str(tmp_path / "artifact"), cache_dir=tmp_path / "cache")
    assert loaded.version == result["model_version"]

    # Fine-tune that artifact with LoRA on an SA-Co gold-format snapshot (the synthetic world exported).
    snapshot = tmp_path / "snapshot"
    generate_world(snapshot, seed=11, n_images=3, size=112)
    payload = {"base_model_uri": str(tmp_path / "artifact"), "output_uri": str(tmp_path / "lora"),
               "annotations_uri": str(snapshot / "gold.json"), "images_uri": str(snapshot),
               "eval_gold_uri": str(snapshot / "gold.json"),
               "config": {"steps": 2, "scenes_per_batch": 2, "eval_every": 2, "lora": {"rank": 2, "alpha": 4},
                          "work_dir": str(tmp_path / "work-lora")}}
    result = finetune_for(payload)
    assert result["error"] is None
    assert result["manifest"]["data"]["snapshot_id"].startswith("sha256:")
    assert result["manifest"]["base_model_version"] == loaded.version
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").is_file()
    load_checkpoint(str(tmp_path / "lora"), cache_dir=tmp_path / "cache")


def test_cli_options_override_the_preset(tmp_path):
    from model.training.__main__ import build_parser, config_from_args

    (tmp_path / "c.json").write_text(json.dumps({"lr": 5e-4, "loss": {"class_loss": "iabce"}}))
    args = build_parser().parse_args(["--preset", "tiny-shapes", "--config", str(tmp_path / "c.json"),
                                      "--steps", "7", "--lora-rank", "4", "--out", "s3://models/x"])
    config = config_from_args(args)
    assert (config.steps, config.lr, config.loss.class_loss, config.out) == (7, 5e-4, "iabce", "s3://models/x")
    assert config.lora.rank == 4 and config.arch.patch_size == 8


def test_train_task_reports_a_bad_payload():
    result = finetune_for({"base_model_uri": "scratch"})
    assert result["error"]["kind"] == "input" and result["artifact_uri"] is None
    result = finetune_for({"base_model_uri": "scratch", "output_uri": "/tmp/x", "config": {"no_such_field": 1}})
    assert result["error"]["kind"] == "input"


@pytest.mark.slow
@pytest.mark.s3
def test_trains_from_a_snapshot_in_s3_and_publishes_there(s3_server, tmp_path):
    client = s3_server.client()
    bucket = s3_server.create_bucket("train")
    snapshot = tmp_path / "snapshot"
    generate_world(snapshot, seed=12, n_images=2, size=112)
    for path in sorted(p for p in snapshot.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"snap/{path.relative_to(snapshot).as_posix()}")
    payload = {"base_model_uri": "scratch", "output_uri": f"s3://{bucket}/models/tiny-ft",
               "annotations_uri": f"s3://{bucket}/snap/gold.json", "images_uri": f"s3://{bucket}/snap",
               "config": {**TINY_CONFIG, "steps": 2, "eval_every": 2, "checkpoint_uri": f"s3://{bucket}/ckpts",
                          "work_dir": str(tmp_path / "work")}}
    result = finetune_for(payload, s3=client)
    assert result["error"] is None
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="ckpts/")["Contents"]}
    assert "ckpts/step-000002/manifest.json" in keys
    loaded = load_checkpoint(result["artifact_uri"], cache_dir=tmp_path / "cache", s3_client=client)
    assert loaded.manifest["data"]["annotations"] == f"s3://{bucket}/snap/gold.json"


def test_batches_made_in_worker_processes_match_the_in_process_ones():
    from model.training.data import batch_stream
    from model.training.modeling import build_from_scratch

    _, processor = build_from_scratch(TINY)
    source = SyntheticScenes(seed=5, scenes_per_batch=2, phrases_per_scene=2, size=112)
    kwargs = dict(image_size=64, mask_size=32, start=3, stop=8)
    inline = list(batch_stream(source, processor.tokenizer, workers=0, **kwargs))
    parallel = list(batch_stream(source, processor.tokenizer, workers=2, **kwargs))
    assert len(inline) == len(parallel) == 5
    for a, b in zip(inline, parallel):
        assert a.phrases == b.phrases
        assert torch.equal(a.pixel_values, b.pixel_values)
        assert all(torch.equal(x, y) for x, y in zip(a.targets.masks, b.targets.masks))


def test_a_time_bound_run_anneals_the_learning_rate_by_wall_time():
    from model.training.trainer import TrainConfig, learning_rate

    config = TrainConfig(out="x", steps=100_000, lr=1e-3, warmup_steps=10, min_lr_ratio=0.05, max_minutes=10)
    assert learning_rate(5_000, config, wall_s=0) == pytest.approx(1e-3, rel=0.01)  # step-wise: barely begun
    assert learning_rate(5_000, config, wall_s=300) == pytest.approx(0.525e-3, rel=1e-6)  # half the time: mid-cosine
    assert learning_rate(5_000, config, wall_s=600) == pytest.approx(0.05e-3, rel=1e-6)


def test_the_committed_tiny_checkpoint_loads_strictly_and_records_how_it_was_made(tmp_path):
    """checkpoints/sam3-tiny (make tiny-model): every file verified, the learning curve and the held-out test
    metrics in its manifest, and a proposal on a scene of a world seed it never saw."""
    from PIL import Image

    from model.sam3.predictor import ConceptPredictor
    from model.synthetic import render_scene

    folder = Path(__file__).resolve().parents[2] / "checkpoints" / "sam3-tiny"
    loaded = load_checkpoint(str(folder), cache_dir=tmp_path)
    manifest = loaded.manifest
    assert manifest["model_version"].startswith("sam3-") and manifest["code_version"]
    assert manifest["learning_curve"] and {"cgF1", "top_score_auc"} <= set(manifest["test_metrics"])
    assert manifest["data"]["kind"] == "synthetic" and (folder / "README.md").is_file()
    scene = render_scene(424242, 0, size=224)
    [proposal] = ConceptPredictor(loaded, device="cpu").propose(Image.fromarray(scene.image), [scene.phrases[0][0]],
                                                                score_threshold=0.0, max_instances=3)
    assert 0.0 <= proposal.presence_score <= 1.0 and 1 <= len(proposal.instances) <= 3  # empty masks are dropped
    assert all(instance.rle["size"] == [224, 224] for instance in proposal.instances)
