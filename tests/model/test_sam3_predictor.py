"""ConceptPredictor: one image encoding for many phrases, masks at the original size, honest scores."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from model import rle
from model.sam3.build import build_tiny
from model.sam3.predictor import ConceptPredictor, Instance, PhraseProposal
from model.synthetic import render_scene

PHRASES = ["red circle", "blue square", "striped green star", "triangle", "dog"]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny(seed=0)


@pytest.fixture
def predictor(tiny):
    return ConceptPredictor(tiny, phrase_batch_size=2)


@pytest.fixture(scope="module")
def scene_image():
    """A 300x200 (w x h) crop-and-stretch of a synthetic scene: not the model's square input size."""
    return Image.fromarray(render_scene(0, 0).image).resize((300, 200))


def test_image_is_encoded_once_for_all_phrases(predictor, scene_image):
    vision_calls, feature_calls = [], []
    hook = predictor.model.vision_encoder.register_forward_hook(lambda *args: vision_calls.append(1))
    real = predictor.model.get_vision_features

    def spy(*args, **kwargs):
        feature_calls.append(1)
        return real(*args, **kwargs)

    predictor.model.get_vision_features = spy
    try:
        proposals = predictor.propose(scene_image, PHRASES, score_threshold=0.0, max_instances=1)
    finally:
        hook.remove()
        del predictor.model.get_vision_features
    assert len(proposals) == len(PHRASES)  # three decoder batches of <= 2 phrases
    assert feature_calls == [1] and vision_calls == [1]


def test_batched_cached_run_matches_processor_post_processing(tiny, predictor, scene_image):
    """Each phrase's instances equal a full single-phrase forward + Sam3Processor post-processing."""
    model, processor = tiny
    proposals = predictor.propose(scene_image, PHRASES, score_threshold=0.2, mask_threshold=0.5, max_instances=6)
    for phrase, proposal in zip(PHRASES, proposals):
        inputs = processor(images=scene_image, text=[phrase], return_tensors="pt")
        with torch.inference_mode():
            outputs = model(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"],
                            attention_mask=inputs["attention_mask"])
        reference = processor.post_process_instance_segmentation(
            outputs, threshold=0.2, mask_threshold=0.5, target_sizes=[(200, 300)])[0]
        order = torch.argsort(reference["scores"], descending=True)
        expected = [(float(reference["scores"][i]), rle.encode(reference["masks"][i].numpy().astype(bool)))
                    for i in order if reference["masks"][i].any()][:6]
        assert len(proposal.instances) == len(expected) > 0
        for instance, (score, mask) in zip(proposal.instances, expected):
            assert instance.score == pytest.approx(score, abs=1e-5)
            assert rle.iou([instance.rle], [mask])[0, 0] > 0.999
        assert proposal.presence_score == pytest.approx(float(outputs.presence_logits.sigmoid()[0, 0]), abs=1e-5)


def test_outputs_are_at_original_size_sorted_and_bounded(predictor, scene_image):
    proposals = predictor.propose(scene_image, PHRASES, score_threshold=0.0, max_instances=4)
    for phrase, proposal in zip(PHRASES, proposals):
        assert proposal.phrase == phrase and not proposal.truncated
        assert 0.0 <= proposal.presence_score <= 1.0
        assert 0 < len(proposal.instances) <= 4
        scores = [i.score for i in proposal.instances]
        assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
        for instance in proposal.instances:
            assert rle.validate(instance.rle, size=(200, 300)) and rle.area([instance.rle])[0] > 0
            x1, y1, x2, y2 = instance.box_xyxy
            assert 0 <= x1 <= x2 <= 300 and 0 <= y1 <= y2 <= 200


def test_thresholds_drop_instances_and_empty_masks(predictor, scene_image):
    nothing_scores = predictor.propose(scene_image, ["red circle"], score_threshold=1.0)[0]
    assert nothing_scores.instances == [] and 0 < nothing_scores.presence_score < 1
    # sigmoid(mask logit) never exceeds 1.0: every mask is empty and must be dropped.
    empty_masks = predictor.propose(scene_image, ["red circle"], score_threshold=0.0, mask_threshold=1.0)[0]
    assert empty_masks.instances == []
    assert predictor.propose(scene_image, ["red circle"], score_threshold=0.0, max_instances=0)[0].instances == []
    assert predictor.propose(scene_image, []) == []


def test_long_phrases_are_truncated_and_flagged(predictor, scene_image):
    long_phrase = " ".join(["striped"] * 40)
    short, cut, boundary = predictor.propose(
        scene_image, ["red circle", long_phrase, " ".join(["red"] * 30)], score_threshold=0.0, max_instances=1)
    assert not short.truncated and cut.truncated and not boundary.truncated  # 30 words + BOS + EOS = 32
    assert cut.phrase == long_phrase


@pytest.mark.parametrize("bad", [[""], ["red circle", "   "], [None], "red circle"])
def test_bad_phrases_raise_value_error(predictor, scene_image, bad):
    with pytest.raises(ValueError):
        predictor.propose(scene_image, bad)


def test_to_json_round_trips(predictor, scene_image):
    proposal = predictor.propose(scene_image, ["red circle"], score_threshold=0.0, max_instances=2)[0]
    data = json.loads(json.dumps(proposal.to_json()))
    assert data == proposal.to_json()
    assert set(data) == {"phrase", "presence_score", "instances", "truncated", "best_beyond_cap", "semantic_rle"}
    assert set(data["instances"][0]) == {"rle", "box_xyxy", "score"}
    restored = PhraseProposal(phrase=data["phrase"], presence_score=data["presence_score"], truncated=data["truncated"],
                              instances=[Instance(**i) for i in data["instances"]],
                              best_beyond_cap=data["best_beyond_cap"], semantic_rle=data["semantic_rle"])
    assert restored == proposal


def test_the_best_instance_the_cap_leaves_out_is_recorded(predictor, scene_image):
    wide = predictor.propose(scene_image, ["red circle"], score_threshold=0.0, max_instances=3, dedupe_iou=0.7)[0]
    capped = predictor.propose(scene_image, ["red circle"], score_threshold=0.0, max_instances=2, dedupe_iou=0.7)[0]
    assert len(wide.instances) == 3
    assert capped.instances == wide.instances[:2]
    assert capped.best_beyond_cap == pytest.approx(wide.instances[2].score)
    uncapped = predictor.propose(scene_image, ["red circle"], score_threshold=0.0, dedupe_iou=0.7)[0]
    assert uncapped.best_beyond_cap == 0.0  # nothing left out


def test_the_semantic_mask_is_the_phrase_heads_output_at_the_original_size(predictor, scene_image):
    [proposal] = predictor.propose(scene_image, ["red circle"], score_threshold=0.0)
    pixel_values = predictor.processor.image_processor(images=[scene_image], return_tensors="pt")["pixel_values"]
    encoded, _ = predictor._tokenize(["red circle"])
    with torch.inference_mode():
        logits = predictor.model(pixel_values=pixel_values, **encoded).semantic_seg  # [1, 1, h, w]
    expected = torch.nn.functional.interpolate(logits.sigmoid(), size=(200, 300), mode="bilinear")[0, 0] > 0.5
    assert proposal.semantic_rle["size"] == [200, 300]
    assert (rle.decode(proposal.semantic_rle).astype(bool) == expected.numpy()).all()
    assert 0 < expected.sum() < 200 * 300  # a mask, neither empty nor everything (else the check says little)


def test_concurrent_calls_give_the_serial_answer(predictor, scene_image):
    expected = [p.to_json() for p in predictor.propose(scene_image, PHRASES, score_threshold=0.2, max_instances=3)]
    results: list = [None] * 4

    def run(slot: int) -> None:
        results[slot] = [p.to_json() for p in predictor.propose(scene_image, PHRASES, score_threshold=0.2,
                                                                max_instances=3)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results)


def test_large_image_masks_come_back_at_full_size(predictor):
    image = Image.fromarray(np.full((1500, 2100, 3), 230, dtype=np.uint8))
    proposal = predictor.propose(image, ["circle"], score_threshold=0.0, max_instances=1)[0]
    assert proposal.instances and proposal.instances[0].rle["size"] == [1500, 2100]


def test_dedupe_keeps_the_best_of_overlapping_masks_before_counting(predictor, scene_image):
    raw = predictor.propose(scene_image, PHRASES, score_threshold=0.0)
    deduped = predictor.propose(scene_image, PHRASES, score_threshold=0.0, dedupe_iou=0.5)
    dropped = 0
    for every, kept in zip(raw, deduped):
        kept_masks = [i.rle for i in kept.instances]
        overlaps = rle.iou(kept_masks, kept_masks) - np.eye(len(kept_masks))
        assert overlaps.max(initial=0.0) <= 0.5  # no two kept masks are one object
        # Greedy in score order: each raw instance is kept unless a better kept one overlaps it by > 0.5.
        expected = []
        for instance in every.instances:
            if expected and rle.iou([instance.rle], [e.rle for e in expected]).max() > 0.5:
                continue
            expected.append(instance)
        assert kept.instances == expected
        dropped += len(every.instances) - len(kept.instances)
    assert dropped > 0  # the untrained model proposes near-identical masks
    limited = predictor.propose(scene_image, PHRASES, score_threshold=0.0, dedupe_iou=0.5, max_instances=2)
    assert [p.instances for p in limited] == [p.instances[:2] for p in deduped]


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_dedupe_iou_outside_zero_one_is_a_value_error(predictor, scene_image, bad):
    with pytest.raises(ValueError, match="dedupe_iou"):
        predictor.propose(scene_image, ["red circle"], dedupe_iou=bad)
