"""Train the click-to-segment tracker (``Sam3TrackerModel``) on the synthetic world.

A prompt on one object — a single positive click, a click plus a negative click beside the object, or a
jittered box — should give that object's visible mask. Each step renders fresh scenes (scene i of world
``world_seed`` is deterministic) and prompts several objects per scene in one forward (the image is encoded
once). Loss as in SAM: sigmoid focal + dice on the low-resolution mask logits against the area-downsampled
mask; with a single click the decoder's three candidates are scored and only the best one learns (a click is
ambiguous); the IoU head learns the actual IoU of each candidate. Evaluation goes through ``ClickPredictor``
(the code path the API uses) on held-out scenes: mean IoU at the original size after one click and after a box.

    python -m model.training.tracker --out checkpoints/sam3-tracker-tiny --steps 100000 --max-minutes 40

Writes the best checkpoint (mean IoU over the click and box prompts) with its manifest (config, data, code version,
learning curve) and a README; ``--init`` continues from an earlier tracker checkpoint.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from model import rle as rle_utils
from model.provenance import code_version
from model.sam3.interactive import (ClickPredictor, build_tiny_tracker, load_tracker_checkpoint,
                                    save_tracker_checkpoint, write_tracker_manifest)
from model.synthetic import REFERENCE_SIZE, WORLD_VERSION, render_scene
from model.training.data import image_tensor
from model.training.loss import dice_loss, sigmoid_focal
from model.training.trainer import learning_rate

log = logging.getLogger("model.training.tracker")
MODES = ("click", "click_negative", "box")
MIN_OBJECT_PIXELS = 30


@dataclass
class TrackerTrainConfig:
    """Everything a tracker run depends on (recorded in the manifest)."""

    out: str
    init: str | None = field(default=None, metadata={"help": "tracker checkpoint to continue from (None: random)"})
    steps: int = 3000
    scenes_per_batch: int = 8
    prompts_per_scene: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    mode_weights: tuple[float, float, float] = field(default=(0.5, 0.25, 0.25), metadata={
        "help": "share of steps prompting with one click, a click + a negative click, a box"})
    w_focal: float = 20.0
    w_dice: float = 1.0
    w_iou: float = 1.0
    world_seed: int = 2000
    domain: str = "shapes"
    render_size: int = REFERENCE_SIZE
    seed: int = 0
    threads: int = 1
    device: str = "auto"
    max_minutes: float | None = field(default=None, metadata={"help": "stop after this wall time (the LR schedule "
                                                                      "follows wall time then)"})
    eval_every: int = 500
    eval_scenes: int = 60
    eval_seed: int = 77
    log_every: int = 50


# ----------------------------------------------------------------------------------------------
# Prompts from masks
# ----------------------------------------------------------------------------------------------


def interior_point(mask: np.ndarray, rng: random.Random) -> tuple[float, float]:
    """A pixel centre (x, y) well inside ``mask``: among the pixels at least half the maximal distance from the
    edge, as an annotator clicks the middle of an object rather than its rim."""
    distance = ndimage.distance_transform_edt(mask)
    ys, xs = np.nonzero(distance >= 0.5 * distance.max())
    i = rng.randrange(len(xs))
    return float(xs[i]) + 0.5, float(ys[i]) + 0.5


def negative_point(mask: np.ndarray, rng: random.Random) -> tuple[float, float]:
    """A pixel outside ``mask`` near it (inside its box grown by half), where a correcting click would land."""
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    grow_x, grow_y = max(2, (x1 - x0) // 2), max(2, (y1 - y0) // 2)
    region = np.zeros_like(mask)
    region[max(0, y0 - grow_y):min(height, y1 + grow_y), max(0, x0 - grow_x):min(width, x1 + grow_x)] = True
    ys, xs = np.nonzero(region & ~mask)
    if not len(xs):
        ys, xs = np.nonzero(~mask)
    i = rng.randrange(len(xs))
    return float(xs[i]) + 0.5, float(ys[i]) + 0.5


def jittered_box(mask: np.ndarray, rng: random.Random, jitter: float = 0.1) -> list[float]:
    """The mask's box [x0, y0, x1, y1] with each side moved by up to ``jitter`` of the box size (a hand-drawn box)."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1.0, ys.min(), ys.max() + 1.0
    w, h = x1 - x0, y1 - y0
    return [x0 + rng.uniform(-jitter, jitter) * w, y0 + rng.uniform(-jitter, jitter) * h,
            x1 + rng.uniform(-jitter, jitter) * w, y1 + rng.uniform(-jitter, jitter) * h]


def scene_objects(world_seed: int, index: int, size: int, domain: str) -> tuple[np.ndarray, list[np.ndarray]]:
    scene = render_scene(world_seed, index, size=size, domain=domain)
    return scene.image, [m for m in scene.visible if m.sum() >= MIN_OBJECT_PIXELS]


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


class TrackerTrainer:
    def __init__(self, config: TrackerTrainConfig):
        self.config = config
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device)
        if config.init:
            loaded = load_tracker_checkpoint(config.init, cache_dir=Path(config.out).parent / ".tracker-cache")
            self.model, self.processor, self.base = loaded.model, loaded.processor, loaded.version
            self.base_curve = loaded.manifest.get("learning_curve", [])
        else:
            self.model, self.processor = build_tiny_tracker(seed=config.seed)
            self.base, self.base_curve = "scratch", []
        self.model.to(self.device).train()
        self.input_size = self.model.config.prompt_encoder_config.image_size
        self.curve: list[dict] = []

    def batch(self, step: int) -> dict:
        """Scenes, the prompt mode of this step and per-scene prompts and target masks (as tensors)."""
        config = self.config
        rng = random.Random(f"{config.seed}:{step}:tracker")
        mode = rng.choices(MODES, weights=config.mode_weights)[0]
        images, points, labels, boxes, targets = [], [], [], [], []
        index = step * config.scenes_per_batch * 3  # room to skip scenes without objects
        while len(images) < config.scenes_per_batch:
            image, masks = scene_objects(config.world_seed, index, config.render_size, config.domain)
            index += 1
            if not masks:
                continue
            chosen = [masks[rng.randrange(len(masks))] for _ in range(config.prompts_per_scene)]
            scale = self.input_size / image.shape[0]
            images.append(image_tensor(image, self.input_size))
            targets.append(torch.from_numpy(np.stack(chosen)).float())
            if mode == "box":
                boxes.append([[v * scale for v in jittered_box(m, rng)] for m in chosen])
                continue
            scene_points, scene_labels = [], []
            for mask in chosen:
                clicks = [interior_point(mask, rng)]
                if mode == "click_negative":
                    clicks.append(negative_point(mask, rng))
                scene_points.append([[x * scale, y * scale] for x, y in clicks])
                scene_labels.append([1, 0][:len(clicks)])
            points.append(scene_points)
            labels.append(scene_labels)
        batch = {"mode": mode, "pixel_values": torch.stack(images), "targets": torch.stack(targets)}
        if mode == "box":
            batch["input_boxes"] = torch.tensor(boxes, dtype=torch.float32)
        else:
            batch["input_points"] = torch.tensor(points, dtype=torch.float32)
            batch["input_labels"] = torch.tensor(labels, dtype=torch.long)
        return batch

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        device = self.device
        prompts = {k: batch[k].to(device) for k in ("input_points", "input_labels", "input_boxes") if k in batch}
        multimask = batch["mode"] == "click"
        outputs = self.model(pixel_values=batch["pixel_values"].to(device), multimask_output=multimask, **prompts)
        logits = outputs.pred_masks  # [S, K, M, h, w]
        scenes, per_scene, candidates, h, w = logits.shape
        target = F.interpolate(batch["targets"].to(device), size=(h, w), mode="area")  # [S, K, h, w]
        target = target[:, :, None].expand(-1, -1, candidates, -1, -1).reshape(-1, h * w)
        flat = logits.reshape(-1, h * w).float()
        focal = sigmoid_focal(flat, target, 0.25, 2.0).mean(-1)
        dice = dice_loss(flat.sigmoid(), target)
        per_candidate = (self.config.w_focal * focal + self.config.w_dice * dice).view(-1, candidates)
        best = per_candidate.min(dim=1).values  # with one candidate: that one
        with torch.no_grad():
            predicted, truth = flat > 0, target > 0.5
            inter = (predicted & truth).sum(-1).float()
            union = (predicted | truth).sum(-1).float()
            actual_iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
        iou_loss = F.mse_loss(outputs.iou_scores.reshape(-1).float(), actual_iou)
        total = best.mean() + self.config.w_iou * iou_loss
        return {"total": total, "mask": best.mean().detach(), "iou_head": iou_loss.detach(),
                "train_iou": actual_iou.view(-1, candidates).max(1).values.mean()}

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Mean IoU at the original size through ClickPredictor: one interior click, and a box, per object."""
        config = self.config
        self.model.eval()
        try:
            predictor = ClickPredictor((self.model, self.processor), device=self.device, uri="training")
            rng = random.Random(f"{config.eval_seed}:eval")
            click, box = [], []
            for index in range(config.eval_scenes):
                image, masks = scene_objects(config.eval_seed, index, config.render_size, config.domain)
                picture = Image.fromarray(image)
                for k, mask in enumerate(masks):
                    truth = rle_utils.encode(mask)
                    x, y = interior_point(mask, rng)
                    result = predictor.segment(picture, media_key=f"eval-{index}", points=[[x, y]], labels=[1])
                    click.append(float(rle_utils.iou([result.rle], [truth])[0][0]))
                    result = predictor.segment(picture, media_key=f"eval-{index}", box=jittered_box(mask, rng, 0.05))
                    box.append(float(rle_utils.iou([result.rle], [truth])[0][0]))
        finally:
            self.model.train()
        return {"miou": float(np.mean(click + box)), "miou_click": float(np.mean(click)),
                "miou_box": float(np.mean(box)),
                "click_iou_ge_0.75": float(np.mean(np.array(click) >= 0.75)), "n_objects": len(click)}

    def manifest(self, step: int, metrics: dict) -> dict:
        return {"train_format": "dataengine.sam3-tracker-train.v1", "base_model_version": self.base,
                "base_learning_curve": self.base_curve,
                "data": {"kind": "synthetic", "world_version": WORLD_VERSION, "domain": self.config.domain,
                         "seed": self.config.world_seed, "eval_seed": self.config.eval_seed},
                "train_config": asdict(self.config), "train_code_version": code_version(), "step": step,
                "metrics": metrics, "learning_curve": self.curve}

    def run(self) -> dict:
        config = self.config
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
        log.info("training the tiny tracker (%d params) on %s for %d steps on %s",
                 sum(p.numel() for p in parameters), WORLD_VERSION, config.steps, self.device)
        started, running, best = time.monotonic(), {}, None
        out = Path(config.out)
        step = 0
        for step in range(1, config.steps + 1):
            wall = time.monotonic() - started
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step - 1, config, wall)
            terms = self.loss(self.batch(step - 1))
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            for key, value in terms.items():
                running[key] = running.get(key, float(value)) * 0.95 + float(value) * 0.05
            out_of_time = config.max_minutes is not None and wall > 60 * config.max_minutes
            if step % config.log_every == 0:
                log.info("step %d %s", step, json.dumps({"wall_s": round(wall, 1), **{
                    k: round(v, 4) for k, v in running.items()}}))
            if step % config.eval_every == 0 or step == config.steps or out_of_time:
                metrics = self.evaluate()
                self.curve.append({"step": step, "wall_s": round(time.monotonic() - started, 1),
                                   "loss": {k: round(v, 4) for k, v in running.items()}, "eval": metrics})
                log.info("eval %s", json.dumps(self.curve[-1]))
                if best is None or metrics["miou"] >= best["miou"]:
                    best = {"step": step, **metrics}
                    save_tracker_checkpoint(self.model, self.processor, out, manifest=self.manifest(step, metrics))
            if out_of_time:
                break
        manifest = finish_checkpoint(out, self.model.config, curve=self.curve, last_step=step,
                                     selected_step=best["step"])
        return {"out": str(out), "model_version": manifest.get("model_version"), "metrics": best}


def finish_checkpoint(out: Path, config, *, curve: list[dict], last_step: int, selected_step: int) -> dict:
    """Give the kept checkpoint (written when its step was the best) the whole learning curve and a README."""
    manifest = json.loads((out / "manifest.json").read_text())
    for name in ("format", "files", "created_at"):
        manifest.pop(name, None)
    manifest.update(learning_curve=curve, last_step=last_step, selected_step=selected_step)
    (out / "README.md").write_text(tracker_readme(manifest))
    return write_tracker_manifest(out, manifest, config)


def tracker_readme(manifest: dict) -> str:
    config = manifest.get("train_config", {})
    lines = [f"# {manifest.get('model_version')}", "",
             "The click-to-segment tracker (`Sam3TrackerModel`, tiny preset architecture) trained by "
             f"`python -m model.training.tracker` (code {manifest.get('train_code_version')}) from "
             f"`{manifest.get('base_model_version')}` on the synthetic world "
             f"(`{json.dumps(manifest.get('data'))}`): {config.get('scenes_per_batch')} scenes x "
             f"{config.get('prompts_per_scene')} prompts per step, lr {config.get('lr')}, "
             f"{manifest.get('last_step')} steps run, step {manifest.get('selected_step')} kept (best mean IoU).",
             "", "Held-out evaluation through `ClickPredictor` (the API's code path), IoU at the original size: "
             "one interior click (the best of three candidates by predicted IoU) and a box jittered by 5%.", "",
             "| step | wall (min) | mask loss | train IoU (best of 3) | mIoU click | mIoU box "
             "| clicks with IoU ≥ 0.75 |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for point in manifest.get("learning_curve", []):
        ev, loss = point["eval"], point["loss"]
        lines.append(f"| {point['step']} | {point['wall_s'] / 60:.1f} | {loss.get('mask', float('nan')):.3f} | "
                     f"{loss.get('train_iou', float('nan')):.3f} | {ev['miou_click']:.3f} | {ev['miou_box']:.3f} | "
                     f"{ev['click_iou_ge_0.75']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.training.tracker", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="checkpoint folder to write (the best step)")
    for name in ("steps", "scenes_per_batch", "prompts_per_scene", "eval_every", "eval_scenes", "seed", "threads",
                 "log_every", "world_seed"):
        parser.add_argument("--" + name.replace("_", "-"), type=int)
    for name in ("lr", "max_minutes"):
        parser.add_argument("--" + name.replace("_", "-"), type=float)
    parser.add_argument("--device")
    parser.add_argument("--init", help="tracker checkpoint folder to continue from")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    result = TrackerTrainer(TrackerTrainConfig(**overrides)).run()
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
