"""Refining concept proposals with the click tracker: one click on each mask's centre, the tracker's mask instead."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model import rle
from model.sam3.build import resolve_model
from model.sam3.interactive import ClickPredictor, build_tiny_tracker, resolve_tracker
from model.sam3.predictor import ConceptPredictor, Instance, PhraseProposal
from model.sam3.refine import interior_point, refine_proposals
from model.synthetic import matches, parse_phrase, render_scene

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
TRAINED_SAM3, TRAINED_TRACKER = CHECKPOINTS / "sam3-tiny", CHECKPOINTS / "sam3-tracker-tiny"
SCENES = 30


def instance(mask: np.ndarray, score: float = 0.9) -> Instance:
    return Instance(rle=rle.encode(mask), box_xyxy=[0.0, 0.0, 1.0, 1.0], score=score, query_score=score)


def coarse(mask: np.ndarray) -> np.ndarray:
    """The mask as a model seeing the image at a quarter of its resolution draws it."""
    small = Image.fromarray(mask.astype(np.uint8) * 255).resize((mask.shape[1] // 4, mask.shape[0] // 4),
                                                              Image.BILINEAR)
    return np.asarray(small.resize((mask.shape[1], mask.shape[0]), Image.BILINEAR)) > 127


def test_the_click_is_the_mask_pixel_farthest_from_its_border():
    square = np.zeros((20, 30), bool)
    square[5:15, 10:20] = True
    assert interior_point(square) == (14.5, 9.5)  # the first of the four centre pixels
    # A U shape: its centroid is off the object; the click must be on it.
    u_shape = np.zeros((40, 40), bool)
    u_shape[5:35, 5:12] = u_shape[5:35, 28:35] = u_shape[28:35, 5:35] = True
    x, y = interior_point(u_shape)
    assert u_shape[int(y), int(x)]
    # The image border is a border too: a mask filling the image is clicked in the middle.
    assert interior_point(np.ones((9, 9), bool)) == (4.5, 4.5)
    assert interior_point(np.zeros((5, 5), bool)) is None


def test_on_a_huge_mask_the_click_is_found_on_a_subsampled_box_and_is_still_on_the_mask():
    mask = np.zeros((3000, 4000), bool)
    mask[1000:2600, 1200:2800] = True
    x, y = interior_point(mask, max_pixels=10_000)  # every 16th pixel of the box
    assert mask[int(y), int(x)] and abs(x - 2000) < 50 and abs(y - 1800) < 50
    thin = np.zeros((3000, 4000), bool)
    thin[1501, 100:3900] = True  # one row: subsampling would miss it
    x, y = interior_point(thin, max_pixels=10_000)
    assert thin[int(y), int(x)]


def test_every_instance_is_drawn_again_and_says_by_which_tracker_from_which_click():
    scene = render_scene(0, 2)
    image = Image.fromarray(scene.image)
    predictor = ClickPredictor(build_tiny_tracker(seed=0), uri="preset:tiny-tracker")
    masks = [coarse(mask) for mask in scene.visible if coarse(mask).any()]
    proposals = [PhraseProposal("shape", 0.8, [instance(mask, 0.9 - 0.1 * i) for i, mask in enumerate(masks)])]
    refined = refine_proposals(predictor, image, proposals, media_key="scene-2")
    assert len(refined) == 1 and refined[0].presence_score == 0.8 and refined[0].phrase == "shape"
    assert len(refined[0].instances) == len(masks)
    for before, after, mask in zip(proposals[0].instances, refined[0].instances, masks):
        assert after.score == before.score and after.query_score == before.query_score
        x, y = after.refined["point"]
        assert mask[int(y), int(x)]  # the click was on the proposed mask
        assert after.refined["tracker"] == "preset:tiny-tracker" and isinstance(after.refined["tracker_iou"], float)
        assert rle.decode(after.rle).shape == scene.image.shape[:2]
        x0, y0, w, h = rle.bbox_xywh(after.rle)
        assert after.box_xyxy == [x0, y0, x0 + w, y0 + h]
        assert after.to_json()["refined"] == after.refined
    assert predictor.has_embedding("scene-2")  # one encode, shared with a later click on the image
    assert "refined" not in proposals[0].instances[0].to_json()  # the input is left as it was


class EmptyTracker:
    """A tracker that finds nothing where it is clicked."""

    version = "empty"

    def segment(self, image, *, media_key, points, labels, guide):
        class Click:
            rle, score = rle.encode(np.zeros((image.height, image.width), bool)), 0.0
        return Click()


def test_an_empty_refined_mask_or_an_empty_proposal_keeps_the_instance_as_it_was():
    image = Image.new("RGB", (32, 24))
    mask = np.zeros((24, 32), bool)
    mask[4:10, 4:10] = True
    proposals = [PhraseProposal("p", 0.5, [instance(mask), instance(np.zeros((24, 32), bool), 0.3)])]
    refined = refine_proposals(EmptyTracker(), image, proposals, media_key="x")
    assert refined[0].instances == proposals[0].instances
    assert all(i.refined is None for i in refined[0].instances)


@pytest.mark.skipif(not all((folder / "manifest.json").is_file() for folder in (TRAINED_SAM3, TRAINED_TRACKER)),
                    reason="no trained checkpoints")
def test_the_trained_tracker_draws_sam3s_proposals_of_held_out_scenes_closer_to_the_truth(tmp_path):
    """The committed tiny SAM 3's top 3 proposals per phrase, as the demo asks, on scenes of a world neither model was
    trained on: for each true instance, its best IoU with a proposal, before and after refinement."""
    concepts = ConceptPredictor(resolve_model(str(TRAINED_SAM3), cache_dir=tmp_path))
    tracker = ClickPredictor(resolve_tracker(str(TRAINED_TRACKER), cache_dir=tmp_path))
    before, after = [], []
    for index in range(SCENES):
        scene = render_scene(991, index)
        image = Image.fromarray(scene.image)
        phrases = [phrase for phrase, kind in scene.phrases if kind == "positive"]
        proposals = concepts.propose(image, phrases, score_threshold=0.0, max_instances=3, dedupe_iou=0.7)
        refined = refine_proposals(tracker, image, proposals, media_key=f"991-{index}", dedupe_iou=0.7)
        for phrase, plain, redrawn in zip(phrases, proposals, refined):
            for truth in instances_of(scene, phrase):
                before.append(best_iou(truth, plain))
                after.append(best_iou(truth, redrawn))
    before, after = np.array(before), np.array(after)
    assert len(before) >= 40
    # Measured (2026-11-26): 92 -> 123 of 141 instances at the annotators' accept IoU (0.75).
    assert (after >= 0.75).sum() >= (before >= 0.75).sum() + 15, ((before >= 0.75).sum(), (after >= 0.75).sum())


def instances_of(scene, phrase: str) -> list[np.ndarray]:
    wanted = parse_phrase(phrase)
    return [mask for obj, mask in zip(scene.objects, scene.visible) if matches(wanted, obj) and mask.any()]


def best_iou(truth: np.ndarray, proposal: PhraseProposal) -> float:
    if not proposal.instances:
        return 0.0
    return float(rle.iou([i.rle for i in proposal.instances], [rle.encode(truth)]).max())


def test_refining_can_make_two_proposals_one_object_and_dedupe_keeps_the_better():
    scene = render_scene(0, 2)
    predictor = ClickPredictor(build_tiny_tracker(seed=0), uri="preset:tiny-tracker")
    mask = scene.visible[0]
    twice = [PhraseProposal("p", 0.9, [instance(mask, 0.9), instance(mask, 0.8)])]
    refined = refine_proposals(predictor, Image.fromarray(scene.image), twice, media_key="s", dedupe_iou=0.7)
    assert [i.score for i in refined[0].instances] == [0.9]
    kept = refine_proposals(predictor, Image.fromarray(scene.image), twice, media_key="s", dedupe_iou=None)
    assert [i.score for i in kept[0].instances] == [0.9, 0.8]
