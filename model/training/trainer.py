"""Train SAM 3 for promptable concept segmentation: from scratch (tiny, synthetic world) or fine-tune a checkpoint
(full or LoRA) on an SA-Co snapshot. Writes intermediate checkpoints, keeps the best one on the held-out gold
set, and publishes it as the artifact with a manifest (base version, data snapshot, config, code version,
metrics, learning curve). Folders or ``s3://bucket/prefix`` for the artifact.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from model.sam3.build import MANIFEST_NAME, resolve_model, save_checkpoint, write_manifest
from model.sam3.predictor import ConceptPredictor
from model.synthetic import REFERENCE_SIZE, WORLD_VERSION, generate_world
from model.training.data import Batch, Curriculum, SacoSnapshot, SyntheticScenes, batch_stream, fetch_uri, split_s3
from model.training.evaluate import evaluate_predictor
from model.training.lora import LoraSettings, apply_lora, inner_model, merged_copy, save_adapter
from model.training.loss import LossConfig, pcs_loss
from model.training.modeling import ArchConfig, build_from_scratch, forward_pcs

log = logging.getLogger("model.training")
TRAIN_FORMAT = "dataengine.sam3-train.v1"


@dataclass
class TrainConfig:
    """Everything a run depends on (recorded in the manifest)."""

    out: str = field(metadata={"help": "artifact folder or s3://bucket/prefix (the best checkpoint goes here)"})
    base: str = field(default="scratch", metadata={"help": "'scratch' or a checkpoint URI/preset to fine-tune"})
    arch: ArchConfig = field(default_factory=ArchConfig, metadata={"help": "sizes when base is 'scratch'"})
    # data
    annotations: str | None = field(default=None, metadata={"help": "SA-Co JSON (path or s3://); None: synthetic"})
    images: str | None = field(default=None, metadata={"help": "folder or s3:// prefix of the snapshot's images"})
    world_seed: int = field(default=1000, metadata={"help": "synthetic training world seed"})
    domain: str = field(default="shapes", metadata={"help": "synthetic concept set"})
    render_size: int = field(default=REFERENCE_SIZE, metadata={"help": "synthetic scenes' side in pixels"})
    scenes_per_batch: int = 8
    phrases_per_scene: int = 4
    curriculum: Curriculum = field(default_factory=Curriculum)
    # optimisation
    steps: int = 2000
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    loss: LossConfig = field(default_factory=LossConfig)
    lora: LoraSettings | None = field(default=None, metadata={"help": "None: full fine-tune"})
    seed: int = 0
    device: str = field(default="auto", metadata={"help": "'auto' (cuda when available), 'cpu' or 'cuda'"})
    threads: int = 1
    data_workers: int = field(default=0, metadata={
        "help": "processes that render and collate batches ahead of the step (0: in the training process)"})
    max_minutes: float | None = field(default=None, metadata={
        "help": "stop (and publish) after this wall time; the LR schedule then follows wall time or steps, "
                "whichever is further along, so a time-bound run still anneals"})
    # evaluation and checkpoints
    eval_gold: str | None = field(default=None, metadata={"help": "gold JSON; None: a generated synthetic one"})
    eval_images: str | None = None
    eval_seed: int = 7
    eval_scenes: int = 30
    test_seed: int | None = field(default=8, metadata={
        "help": "synthetic runs: seed of a second held-out set, scored once on the kept checkpoint"})
    eval_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 50
    work_dir: str | None = field(default=None, metadata={"help": "local folder for checkpoints and eval data"})
    checkpoint_uri: str | None = field(default=None, metadata={
        "help": "folder or s3:// prefix that receives every evaluated checkpoint as step-NNNNNN/"})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        data = dict(data)
        if isinstance(data.get("arch"), dict):
            data["arch"] = ArchConfig(**data["arch"])
        if isinstance(data.get("curriculum"), dict):
            data["curriculum"] = Curriculum(**data["curriculum"])
        if isinstance(data.get("loss"), dict):
            data["loss"] = LossConfig(**data["loss"])
        if isinstance(data.get("lora"), dict):
            data["lora"] = LoraSettings(**data["lora"])
        return cls(**data)


def learning_rate(step: int, config: Any, wall_s: float = 0.0) -> float:
    """Linear warmup, then cosine decay to ``min_lr_ratio * lr`` at ``steps`` (or at ``max_minutes`` of wall time,
    if that comes first). ``config``: any training config with those fields (SAM 3's, the tracker's)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    if config.max_minutes:
        progress = max(progress, min(1.0, wall_s / (60 * config.max_minutes)))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def upload_folder(folder: Path, uri: str, s3_client: Any) -> None:
    """Copy every file under ``folder`` to ``s3://bucket/prefix/<relative path>``."""
    bucket, prefix = split_s3(uri)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3_client.upload_file(str(path), bucket, f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}")


class Trainer:
    """One training run. ``run()`` returns ``{"artifact_uri", "manifest", "metrics"}``."""

    def __init__(self, config: TrainConfig, *, s3_client: Any = None, cache_dir: str | Path | None = None,
                 progress: bool = True, on_log: Callable[[dict], None] | None = None):
        self.config, self.s3, self.progress, self.on_log = config, s3_client, progress, on_log
        self.work = Path(config.work_dir or tempfile.mkdtemp(prefix="sam3-train-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.cache_dir = Path(cache_dir or self.work / "cache")
        self.curve: list[dict] = []
        self.probe: Batch | None = None  # a fixed training batch for the collapse diagnostics
        self.best: dict | None = None

    # -- setup ---------------------------------------------------------------------------------

    def _model(self) -> None:
        config = self.config
        if config.base == "scratch":
            self.model, self.processor = build_from_scratch(config.arch, seed=config.seed)
            self.base_version, self.base_manifest = "scratch", {"arch": asdict(config.arch)}
        else:
            loaded = resolve_model(config.base, cache_dir=self.cache_dir, s3_client=self.s3)
            self.model, self.processor = loaded.model.train(), loaded.processor
            self.base_version, self.base_manifest = loaded.version, loaded.manifest
        self.trainable = self.model
        if config.lora is not None:
            self.trainable = apply_lora(self.model, config.lora)
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device)
        self.trainable.to(self.device)
        self.inner = inner_model(self.trainable)
        vision = self.inner.config.vision_config.backbone_config
        self.image_size = vision.image_size
        self.mask_size = 4 * (vision.image_size // vision.patch_size)

    def _data(self) -> None:
        config = self.config
        if config.annotations:
            self.data = SacoSnapshot(config.annotations, config.images or str(Path(config.annotations).parent),
                                     cache_dir=self.cache_dir, s3_client=self.s3,
                                     scenes_per_batch=config.scenes_per_batch,
                                     phrases_per_scene=config.phrases_per_scene, seed=config.seed)
            self.snapshot = {"kind": "saco", "snapshot_id": self.data.snapshot_id, "annotations": config.annotations,
                             "images": config.images, "n_pairs": self.data.n_pairs}
        else:
            self.data = SyntheticScenes(seed=config.world_seed, domain=config.domain, size=config.render_size,
                                        scenes_per_batch=config.scenes_per_batch,
                                        phrases_per_scene=config.phrases_per_scene, curriculum=config.curriculum)
            world = f"{WORLD_VERSION}:{config.domain}:seed={config.world_seed}"
            self.snapshot = {"kind": "synthetic", "snapshot_id": world, "world_version": WORLD_VERSION,
                             "domain": config.domain, "seed": config.world_seed}
        if config.eval_gold:
            self.eval_gold = fetch_uri(config.eval_gold, self.cache_dir, self.s3)
            self.eval_images = config.eval_images or str(self.eval_gold.parent)
        elif not config.annotations:
            folder = self.work / "eval-gold"
            if not (folder / "gold.json").is_file():
                generate_world(folder, seed=config.eval_seed, n_images=config.eval_scenes, size=config.render_size,
                               domain=config.domain)
            self.eval_gold, self.eval_images = folder / "gold.json", str(folder)
        else:
            self.eval_gold = None

    # -- steps ---------------------------------------------------------------------------------

    def train_step(self, batch: Batch) -> dict[str, float]:
        device = self.device
        outputs = forward_pcs(self.inner, batch.pixel_values.to(device), batch.scene_index.to(device),
                              batch.input_ids.to(device), batch.attention_mask.to(device))
        terms = pcs_loss(outputs, batch.targets, self.config.loss)
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.config.grad_clip)
        self.optimizer.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    def evaluate(self) -> dict:
        if self.eval_gold is None:
            return {}
        self.inner.eval()
        try:
            predictor = ConceptPredictor((self.inner, self.processor), device=self.device)
            metrics = evaluate_predictor(predictor, self.eval_gold, self.eval_images)
            if self.probe is not None:
                metrics.update(query_diversity(self.inner, self.probe, self.device))
        finally:
            self.inner.train()
        return metrics

    def test(self, folder: Path) -> dict:
        """Score a saved checkpoint on a synthetic set never used for selection (official evaluator)."""
        config = self.config
        if config.annotations or config.test_seed is None:
            return {}
        gold = self.work / "test-gold"
        if not (gold / "gold.json").is_file():
            generate_world(gold, seed=config.test_seed, n_images=config.eval_scenes, size=config.render_size,
                           domain=config.domain)
        loaded = resolve_model(str(folder), cache_dir=self.cache_dir)
        return evaluate_predictor(ConceptPredictor(loaded, device=self.device), gold / "gold.json")

    def _plain_model(self):
        """The model to save: adapters merged in (LoRA) or the trained model itself."""
        return merged_copy(self.trainable) if self.config.lora is not None else self.model

    def save(self, folder: Path, step: int, metrics: dict) -> Path:
        manifest = self.manifest(step, metrics)
        if folder.exists():
            shutil.rmtree(folder)
        save_checkpoint(self._plain_model(), self.processor, folder, manifest=manifest)
        if self.config.lora is not None:
            save_adapter(self.trainable, folder / "adapter")
            write_manifest(folder, manifest, config=self.model.config)
        return folder

    def manifest(self, step: int, metrics: dict) -> dict:
        return {
            "train_format": TRAIN_FORMAT,
            "base_model_version": self.base_version,
            "base_uri": self.config.base,
            "data": self.snapshot,
            "train_config": self.config.to_dict(),
            "step": step,
            "metrics": metrics,
            "learning_curve": self.curve,
            "eval_set": str(self.eval_gold) if self.eval_gold else None,
        }

    # -- run -----------------------------------------------------------------------------------

    def run(self) -> dict:
        config = self.config
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self._model()
        self._data()
        self.parameters = [p for p in self.trainable.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.parameters, lr=config.lr, weight_decay=config.weight_decay)
        self.inner.train()
        log.info("training %s (%d params, %d trainable) on %s for %d steps on %s", config.base,
                 sum(p.numel() for p in self.trainable.parameters()), sum(p.numel() for p in self.parameters),
                 self.snapshot["snapshot_id"], config.steps, self.device)
        start = time.monotonic()
        running: dict[str, float] = {}
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=config.steps, desc="train", unit="step", mininterval=5)
        batches = batch_stream(self.data, self.processor.tokenizer, image_size=self.image_size,
                               mask_size=self.mask_size, start=0, stop=config.steps, workers=config.data_workers)
        step = 0
        for step, batch in enumerate(batches, start=1):
            if self.probe is None:
                self.probe = batch
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(step - 1, config, time.monotonic() - start)
            terms = self.train_step(batch)
            for key, value in terms.items():
                running[key] = running.get(key, value) * 0.95 + value * 0.05
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{running['total']:.3f}", presence=f"{running['presence']:.3f}")
            wall = time.monotonic() - start
            out_of_time = config.max_minutes is not None and wall > 60 * config.max_minutes
            if step % config.log_every == 0:
                line = {"step": step, "wall_s": round(wall, 1), "lr": self.optimizer.param_groups[0]["lr"],
                        **{k: round(v, 4) for k, v in running.items()}}
                log.info("step %d %s", step, json.dumps(line))
                if self.on_log:
                    self.on_log(line)
            if step % config.eval_every == 0 or step == config.steps or out_of_time:
                self._checkpoint(step, wall, running)
            elif step % config.checkpoint_every == 0:
                self.save(self.work / "checkpoints" / "latest", step, {})
            if out_of_time:
                log.info("time budget of %.1f min reached at step %d", config.max_minutes, step)
                break
        if bar is not None:
            bar.close()
        return self.publish(step)

    def _checkpoint(self, step: int, wall: float, running: dict[str, float]) -> None:
        metrics = self.evaluate()
        point = {"step": step, "wall_s": round(wall, 1), "loss": {k: round(v, 4) for k, v in running.items()},
                 "eval": metrics}
        self.curve.append(point)
        log.info("eval %s", json.dumps(point))
        if self.on_log:
            self.on_log(point)
        folder = self.work / "checkpoints" / f"step-{step:06d}"
        self.save(folder, step, metrics)
        if self.config.checkpoint_uri:
            self._copy_out(folder, f"{self.config.checkpoint_uri.rstrip('/')}/{folder.name}")
        score = metrics.get("cgF1", -float("inf"))
        if self.best is None or score >= self.best["score"] or not metrics:
            self.best = {"step": step, "score": score, "metrics": metrics, "folder": folder}
        # Keep the best and the newest step folders only.
        for old in (self.work / "checkpoints").glob("step-*"):
            if old not in (folder, self.best["folder"]):
                shutil.rmtree(old)

    def publish(self, step: int) -> dict:
        """Copy the best evaluated checkpoint (with the full learning curve) to ``config.out``."""
        if self.best is None:
            self._checkpoint(step, 0.0, {})
        best = self.best
        staging = self.work / "artifact"
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(best["folder"], staging)
        manifest = json.loads((staging / MANIFEST_NAME).read_text())
        manifest.update(learning_curve=self.curve, last_step=step, selected_step=best["step"],
                        test_metrics=self.test(best["folder"]))
        for name in ("format", "files", "created_at"):
            manifest.pop(name, None)
        (staging / "README.md").write_text(learning_curve_markdown(manifest))
        manifest = write_manifest(staging, manifest, config=self.model.config)
        self._copy_out(staging, self.config.out)
        return {"artifact_uri": self.config.out, "manifest": manifest, "metrics": best["metrics"]}

    def _copy_out(self, folder: Path, uri: str) -> None:
        """Publish a local checkpoint folder at ``uri`` (a folder, replaced, or an s3:// prefix)."""
        if uri.startswith("s3://"):
            upload_folder(folder, uri, self.s3)
            return
        target = Path(uri)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(folder, target)


@torch.no_grad()
def query_diversity(model: Any, batch: Batch, device: torch.device) -> dict[str, float]:
    """Collapse diagnostics on a fixed batch (last decoder layer): how much the class logit varies over the
    queries of one pair, and how much the boxes vary over pairs (different images and phrases). Both near zero
    means the decoder gives every query the same vector whatever the image: DETR's collapsed state, where the
    class head can only predict the base rate."""
    outputs = forward_pcs(model, batch.pixel_values.to(device), batch.scene_index.to(device),
                          batch.input_ids.to(device), batch.attention_mask.to(device))
    logits, boxes = outputs["logits"][-1].float(), outputs["boxes"][-1].float()
    return {"query_logit_spread": round(float(logits.std(1).mean()), 5),
            "box_spread_over_images": round(float(boxes.std(0).mean()), 5)}


def learning_curve_markdown(manifest: dict) -> str:
    """A short README for a published checkpoint: what it is, how it was trained, and its learning curve."""
    config = manifest.get("train_config", {})
    lines = [
        f"# {manifest.get('model_version', 'SAM 3 checkpoint')}",
        "",
        "Trained by `python -m model.training` "
        f"(code {manifest.get('train_code_version') or manifest.get('code_version')})"
        f" from `{manifest.get('base_uri')}` on `{manifest.get('data', {}).get('snapshot_id')}`.",
        f"Architecture: `{json.dumps(config.get('arch'))}`; {config.get('scenes_per_batch')} scenes x "
        f"{config.get('phrases_per_scene')} phrases per step, lr {config.get('lr')}, "
        f"{manifest.get('last_step')} steps run, step {manifest.get('selected_step')} kept (best held-out cgF1).",
        "",
        "| step | wall (min) | loss | presence loss | cgF1 | pmF1 | IL_MCC | top-score AUC | top-1 hit | mask recall "
        "| query spread |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    nan = float("nan")
    for point in manifest.get("learning_curve", []):
        ev, loss = point.get("eval", {}), point.get("loss", {})
        lines.append(
            f"| {point['step']} | {point['wall_s'] / 60:.1f} | {loss.get('total', nan):.2f} | "
            f"{loss.get('presence', nan):.3f} | {ev.get('cgF1', nan):.1f} | {ev.get('pmF1', nan):.3f} | "
            f"{ev.get('IL_MCC', nan):.3f} | {ev.get('top_score_auc', nan):.3f} | {ev.get('top1_hit', nan):.3f} | "
            f"{ev.get('best_mask_recall', nan):.3f} | {ev.get('query_logit_spread', nan):.3f} |")
    lines += ["", "cgF1 is ×100 (official evaluator `model.eval` where available); top-1 hit: the best-scoring query"
              " overlaps a true instance at IoU ≥ 0.5; mask recall: instances covered at IoU ≥ 0.5 by one of the"
              " top-6 masks; AUC: top score, positive vs negative pairs; query spread: std of the class logit over"
              " one pair's queries (≈ 0: the decoder has collapsed, every query the same)."]
    if manifest.get("test_metrics"):
        lines += ["", "Held-out test set (not used for selection): `" + json.dumps(
            {k: round(v, 4) if isinstance(v, float) else v for k, v in manifest["test_metrics"].items()}) + "`"]
    for note in manifest.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def train(config: TrainConfig, **kwargs: Any) -> dict:
    """Run one training job; see Trainer."""
    return Trainer(config, **kwargs).run()
