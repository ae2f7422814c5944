"""Training the click-to-segment tracker: prompts made from masks, the loss, and a short run's checkpoint."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from model.sam3.interactive import load_tracker_checkpoint
from model.training.tracker import (TrackerTrainConfig, TrackerTrainer, interior_point, jittered_box,
                                    negative_point)


@pytest.fixture
def rectangle():
    """A 40x40 mask holding a filled 22 x 30 rectangle."""
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:35, 8:30] = True
    return mask


def test_clicks_land_inside_the_object_and_negative_clicks_beside_it(rectangle):
    rng = random.Random(0)
    for _ in range(50):
        x, y = interior_point(rectangle, rng)
        assert rectangle[int(y), int(x)]
        assert 8 + 4 <= x <= 30 - 4 and 5 + 4 <= y <= 35 - 4  # well inside, not on the rim
        x, y = negative_point(rectangle, rng)
        assert not rectangle[int(y), int(x)]
        assert -1 <= x <= 41 and -1 <= y <= 41


def test_a_jittered_box_stays_close_to_the_object(rectangle):
    rng = random.Random(1)
    for _ in range(20):
        x0, y0, x1, y1 = jittered_box(rectangle, rng, jitter=0.1)
        assert abs(x0 - 8) <= 2.2 and abs(x1 - 30) <= 2.2 and abs(y0 - 5) <= 3 and abs(y1 - 35) <= 3


@pytest.mark.parametrize("mode", ["click", "click_negative", "box"])
def test_each_prompt_mode_gives_a_finite_loss_with_gradients(mode):
    trainer = TrackerTrainer(TrackerTrainConfig(out="unused", scenes_per_batch=2, prompts_per_scene=2, device="cpu"))
    step = next(s for s in range(200) if trainer.batch(s)["mode"] == mode)
    batch = trainer.batch(step)
    assert batch["targets"].shape[:2] == (2, 2)
    terms = trainer.loss(batch)
    terms["total"].backward()
    assert torch.isfinite(terms["total"])
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


@pytest.mark.slow
def test_a_short_run_writes_a_tracker_checkpoint_with_its_curve(tmp_path):
    out = tmp_path / "tracker"
    config = TrackerTrainConfig(out=str(out), steps=4, scenes_per_batch=2, prompts_per_scene=2, eval_every=2,
                                eval_scenes=2, warmup_steps=1, device="cpu")
    result = TrackerTrainer(config).run()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [point["step"] for point in manifest["learning_curve"]] == [2, 4]
    assert manifest["selected_step"] == result["metrics"]["step"]
    assert manifest["train_config"]["steps"] == 4 and manifest["model_class"] == "Sam3TrackerModel"
    loaded = load_tracker_checkpoint(str(out), cache_dir=tmp_path / "cache")
    assert loaded.version == manifest["model_version"].strip() and loaded.version.startswith("tracker-")
    again = TrackerTrainConfig(out=str(tmp_path / "continued"), init=str(out), steps=2, scenes_per_batch=2,
                               prompts_per_scene=2, eval_every=2, eval_scenes=2, warmup_steps=1, device="cpu")
    TrackerTrainer(again).run()
    continued = json.loads((tmp_path / "continued" / "manifest.json").read_text())
    assert continued["base_model_version"] == loaded.version
    assert continued["base_learning_curve"] == manifest["learning_curve"]


def test_the_committed_tracker_segments_a_clicked_object_of_an_unseen_scene(tmp_path):
    """checkpoints/sam3-tracker-tiny (the default tracker) on scenes of a world seed used neither for training nor
    for checkpoint selection: one interior click per object."""
    from PIL import Image

    from model import rle
    from model.sam3.interactive import ClickPredictor
    from model.training.tracker import scene_objects
    from workers.interactive import TRAINED_TINY_TRACKER

    predictor = ClickPredictor(load_tracker_checkpoint(str(TRAINED_TINY_TRACKER), cache_dir=tmp_path))
    rng, ious = random.Random(5), []
    for index in range(6):
        image, masks = scene_objects(4242, index, 224, "shapes")
        for mask in masks:
            x, y = interior_point(mask, rng)
            result = predictor.segment(Image.fromarray(image), media_key=str(index), points=[[x, y]], labels=[1])
            ious.append(float(rle.iou([result.rle], [rle.encode(mask)])[0][0]))
    assert len(ious) >= 10
    assert np.mean(ious) >= 0.6, f"mean IoU {np.mean(ious):.3f} over {len(ious)} objects"
