"""Click-to-segment with Sam3TrackerModel: one mask per prompt, the image encoded once per (model, media)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

from model import rle
from model.sam3.build import MANIFEST_NAME, CheckpointError, build_tiny, save_checkpoint, write_manifest
from model.sam3.interactive import (
    TINY_TRACKER_URI,
    ClickPredictor,
    EmbeddingCache,
    ImageEmbedding,
    build_tiny_tracker,
    check_prompts,
    resolve_tracker,
    save_tracker_checkpoint,
    upsample_mask,
)
from model.synthetic import render_scene

SHA_A, SHA_B = "a" * 64, "b" * 64


@pytest.fixture(scope="module")
def tracker():
    return build_tiny_tracker(seed=0)


@pytest.fixture
def predictor(tracker):
    return ClickPredictor(tracker, uri="preset:tiny-tracker")


@pytest.fixture(scope="module")
def scene():
    return Image.fromarray(render_scene(0, 2).image).resize((160, 120))


class CountingLoader:
    def __init__(self, image):
        self.image, self.calls = image, 0

    def __call__(self):
        self.calls += 1
        return self.image


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tiny_tracker_is_deterministic_per_seed_and_leaves_global_rng_alone(tracker):
    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    again, processor = build_tiny_tracker(seed=0)
    assert torch.equal(torch.rand(2), expected)
    assert same_weights(again, tracker[0])
    assert not same_weights(build_tiny_tracker(seed=1)[0], tracker[0])
    assert sum(p.numel() for p in again.parameters()) < 1_000_000
    assert processor.image_processor.size == {"height": 224, "width": 224}


def test_first_click_encodes_and_later_clicks_reuse_the_embedding(predictor, scene):
    loader = CountingLoader(scene)
    first = predictor.segment(loader, media_key=SHA_A, points=[[40, 30]], labels=[1])
    assert loader.calls == 1 and first.cached_embedding is False and first.size == (120, 160)
    assert rle.validate(first.rle, size=(120, 160)) and 0.0 <= first.score <= 1.0 and 0 <= first.object_score <= 1
    second = predictor.segment(loader, media_key=SHA_A, points=[[40, 30], [100, 90]], labels=[1, 0])
    third = predictor.segment(loader, media_key=SHA_A, points=[[40, 30]], labels=[1])
    assert loader.calls == 1  # the image was not even loaded again
    assert second.cached_embedding and third.cached_embedding and predictor.has_embedding(SHA_A)
    assert third.rle == first.rle and third.score == pytest.approx(first.score)  # cached == fresh
    assert predictor.cache.hits == 2 and predictor.cache.misses == 1


def test_points_boxes_and_labels_all_reach_the_decoder(predictor, scene):
    embedding = predictor.embed(scene)
    positive, *_ = predictor._decode(embedding, [(40.0, 30.0)], [1], None)
    negative, *_ = predictor._decode(embedding, [(40.0, 30.0)], [0], None)
    moved, *_ = predictor._decode(embedding, [(120.0, 90.0)], [1], None)
    boxed, *_ = predictor._decode(embedding, [], [], (10.0, 10.0, 80.0, 60.0))
    both, *_ = predictor._decode(embedding, [(40.0, 30.0)], [1], (10.0, 10.0, 80.0, 60.0))
    assert positive.shape == (3, 64, 64) and boxed.shape == both.shape == (1, 64, 64)  # one click is ambiguous
    for other in (negative, moved, boxed, both):
        assert not torch.allclose(positive[0], other[0])
    result = predictor.segment(scene, media_key=SHA_B, box=[10, 10, 80, 60])
    assert result.rle["size"] == [120, 160]


def test_the_cache_key_is_model_and_media(tracker, scene):
    shared = EmbeddingCache()
    a = ClickPredictor(tracker, uri="preset:tiny-tracker?seed=0", cache=shared)
    b = ClickPredictor(build_tiny_tracker(seed=1), uri="preset:tiny-tracker?seed=1", cache=shared)
    assert not a.segment(scene, media_key=SHA_A, points=[[5, 5]], labels=[1]).cached_embedding
    assert not b.segment(scene, media_key=SHA_A, points=[[5, 5]], labels=[1]).cached_embedding
    assert not a.segment(scene, media_key=SHA_B, points=[[5, 5]], labels=[1]).cached_embedding
    assert a.segment(scene, media_key=SHA_A, points=[[5, 5]], labels=[1]).cached_embedding
    assert len(shared) == 3


def test_cache_is_lru_bounded_by_entries_and_bytes():
    def entry(n):
        return ImageEmbedding(features=[torch.zeros(n)], size=(1, 1))  # n float32 = 4n bytes

    cache = EmbeddingCache(max_entries=2, max_bytes=1000)
    cache.put(("m", "1"), entry(10))
    cache.put(("m", "2"), entry(10))
    assert cache.get(("m", "1")) is not None  # 1 is now the most recent
    cache.put(("m", "3"), entry(10))
    assert ("m", "2") not in cache and ("m", "1") in cache and ("m", "3") in cache
    cache.put(("m", "4"), entry(245))  # 980 bytes: both older entries must go to stay under 1000
    assert list(cache._entries) == [("m", "4")] and cache.nbytes == 980
    cache.put(("m", "5"), entry(1000))  # bigger than the whole budget: not cached, nothing evicted
    assert ("m", "5") not in cache and len(cache) == 1


@pytest.mark.parametrize("size", [(300, 400), (7, 5), (1, 1), (1000, 37)])
def test_banded_upsampling_is_bilinear_interpolation(size):
    logits = torch.randn(24, 16, generator=torch.Generator().manual_seed(1))
    expected = F.interpolate(logits[None, None], size=size, mode="bilinear", align_corners=False)[0, 0] > 0.1
    for band in (1, 97, 10**9):
        assert np.array_equal(upsample_mask(logits, size, threshold=0.1, band_elements=band), expected.numpy())


def test_a_huge_image_gives_a_full_size_mask_in_bounded_bands(predictor):
    huge = Image.new("RGB", (3000, 2000), (30, 120, 200))
    result = predictor.segment(huge, media_key="c" * 64, points=[[2999, 1999]], labels=[1])
    assert result.rle["size"] == [2000, 3000] and 0 <= rle.area([result.rle])[0] <= 6_000_000


@pytest.mark.parametrize(("points", "labels", "box", "message"), [
    ([], [], None, "at least one point or a box"),
    ([[1, 2]], [], None, "1 points but 0 labels"),
    ([[1, 2]], [2], None, "label 0 must be 1"),
    ([[1, 2]], [True], None, "label 0 must be 1"),
    ([[1]], [1], None, "point 0 must be"),
    ([[1, float("nan")]], [1], None, "finite"),
    ([], [], [5, 5, 5, 9], "x1 < x2"),
    ([], [], [1, 2, 3], "box"),
    ([[0, 0]] * 65, [1] * 65, None, "at most 64"),
    ([[161, 5]], [1], None, "outside the 160x120 image"),
    ([[5, -1]], [1], None, "outside"),
    ([], [], [0, 0, 160, 121], "outside"),
])
def test_bad_prompts_are_refused_with_a_reason(predictor, scene, points, labels, box, message):
    with pytest.raises(ValueError, match=message):
        predictor.segment(scene, media_key=SHA_A, points=points, labels=labels, box=box)


def test_prompts_on_the_image_border_are_inside():
    assert check_prompts([[0, 0], [160, 120]], [1, 0], [0, 0, 160, 120], size=(120, 160))[2] == (0, 0, 160, 120)


def test_tracker_checkpoint_round_trip_is_exact(tracker, scene, tmp_path):
    model, processor = tracker
    folder = save_tracker_checkpoint(model, processor, tmp_path / "tracker", manifest={"model_version": "trk-1"})
    loaded = resolve_tracker(str(folder), cache_dir=tmp_path / "cache")
    assert loaded.version == "trk-1" and loaded.manifest["model_class"] == "Sam3TrackerModel"
    assert same_weights(loaded.model, model)
    a = ClickPredictor(loaded).segment(scene, media_key=SHA_A, points=[[40, 30]], labels=[1])
    b = ClickPredictor(tracker).segment(scene, media_key=SHA_A, points=[[40, 30]], labels=[1])
    assert a.rle == b.rle and a.score == b.score
    assert resolve_tracker(folder.as_uri(), cache_dir=tmp_path / "cache").version == "trk-1"


def test_a_checkpoint_with_wrong_keys_is_refused(tracker, tmp_path):
    model, processor = tracker
    folder = save_tracker_checkpoint(model, processor, tmp_path / "tracker", manifest={})
    weights = load_file(folder / "model.safetensors")
    dropped = next(k for k in weights if ".mask_decoder.iou_prediction_head." in k)
    weights[dropped.replace("iou_prediction_head", "not_a_head")] = weights.pop(dropped)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    full = write_manifest(folder, {"model_version": manifest["model_version"]})  # re-hash: keys, not bytes, are wrong
    full["model_class"] = "Sam3TrackerModel"
    (folder / MANIFEST_NAME).write_text(json.dumps(full))
    with pytest.raises(CheckpointError, match="does not match Sam3TrackerModel exactly"):
        resolve_tracker(str(folder), cache_dir=tmp_path)


def test_other_unusable_trackers_are_checkpoint_errors(tmp_path):
    model, processor = build_tiny(seed=0)
    concept = save_checkpoint(model, processor, tmp_path / "concept", manifest={})
    with pytest.raises(CheckpointError, match="not a Sam3TrackerModel"):
        resolve_tracker(str(concept), cache_dir=tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        resolve_tracker(str(tmp_path / "missing"), cache_dir=tmp_path)
    with pytest.raises(CheckpointError, match="unknown tracker preset"):
        resolve_tracker("preset:tiny", cache_dir=tmp_path)
    with pytest.raises(CheckpointError, match="seed must be an integer"):
        resolve_tracker(TINY_TRACKER_URI + "?seed=x", cache_dir=tmp_path)
    with pytest.raises(CheckpointError, match="S3 client"):
        resolve_tracker("s3://bucket/trackers/t1", cache_dir=tmp_path)


def test_a_guide_picks_the_candidate_closest_to_the_extent_meant(predictor, scene):
    """One click gives three candidates; a guide mask (the extent meant) weighs in with the predicted IoUs."""
    embedding = predictor.embed(scene)
    logits, scores, _ = predictor._decode(embedding, [(40.0, 30.0)], [1], None)
    candidates = [rle.encode(upsample_mask(c, embedding.size)) for c in logits]
    plain = predictor.segment(scene, media_key=SHA_A, points=[[40, 30]], labels=[1])
    assert plain.rle == candidates[int(torch.argmax(scores))]
    for guide in candidates:
        guided = predictor.segment(scene, media_key=SHA_A, points=[[40, 30]], labels=[1], guide=guide)
        chosen = candidates.index(guided.rle)
        totals = scores.numpy() + rle.iou(candidates, [guide])[:, 0]
        assert chosen == int(np.argmax(totals)) and guided.score == float(scores[chosen])
