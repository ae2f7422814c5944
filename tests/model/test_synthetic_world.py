"""The synthetic world: deterministic scenes, exact visible masks, SA-Co gold fields, honest negatives."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from model import rle
from model.synthetic import (
    COLOURS,
    DOMAINS,
    generate_world,
    main,
    matches,
    parse_phrase,
    phrase_vocabulary,
    render_scene,
    shape_mask,
)

SIZE = 224


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    summary = generate_world(out, seed=11, n_images=30)
    return out, summary, json.loads((out / "gold.json").read_text())


def _pairs_by_scene(gold):
    by_scene: dict[int, list[dict]] = {}
    for entry in gold["images"]:
        by_scene.setdefault(entry["media_id"], []).append(entry)
    return by_scene


def test_same_seed_same_world_and_scene_independent_of_count(tmp_path):
    a = generate_world(tmp_path / "a", seed=3, n_images=4)
    b = generate_world(tmp_path / "b", seed=3, n_images=4)
    assert a["n_pairs"] == b["n_pairs"]
    gold_a, gold_b = ((tmp_path / name / "gold.json").read_text() for name in ("a", "b"))
    assert gold_a == gold_b
    for i in range(4):
        name = f"images/scene_{i:05d}.png"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # Scene 2 of a 4-scene world is scene 2 of any world with that seed.
    assert np.array_equal(render_scene(3, 2).image, np.asarray(Image.open(tmp_path / "a" / "images/scene_00002.png")))
    assert not np.array_equal(render_scene(3, 2).image, render_scene(4, 2).image)


def test_gold_has_sa_co_fields(world):
    out, summary, gold = world
    assert gold["info"]["generator"] == "model.synthetic" and gold["info"]["seed"] == 11
    assert "code_version" in gold["info"]
    assert summary["n_pairs"] == len(gold["images"]) and summary["n_annotations"] == len(gold["annotations"])
    ids = [entry["id"] for entry in gold["images"]]
    assert len(set(ids)) == len(ids) and min(ids) >= 1
    for entry in gold["images"]:
        assert {"id", "file_name", "text_input", "width", "height", "queried_category", "is_instance_exhaustive",
                "is_pixel_exhaustive", "phrase_kind", "media_id"} <= set(entry)
        assert entry["file_name"] == f"images/scene_{entry['media_id']:05d}.png"
        assert (out / entry["file_name"]).is_file()
        assert (entry["width"], entry["height"]) == (SIZE, SIZE)
        assert entry["is_instance_exhaustive"] == 1 and entry["is_pixel_exhaustive"] == 1
    for ann in gold["annotations"]:
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0 and ann["source"] == "manual"
        assert rle.validate(ann["segmentation"], size=(SIZE, SIZE)) == ann["segmentation"]
        pixels = rle.area([ann["segmentation"]])[0]
        assert ann["area"] == pytest.approx(pixels / SIZE**2)
        x, y, w, h = rle.bbox_xywh(ann["segmentation"])
        assert ann["bbox"] == pytest.approx([x / SIZE, y / SIZE, w / SIZE, h / SIZE])
        assert all(0.0 <= v <= 1.0 for v in ann["bbox"])


def _annotations_by_pair(gold):
    by_pair: dict[int, list[dict]] = {}
    for ann in gold["annotations"]:
        by_pair.setdefault(ann["image_id"], []).append(ann)
    return by_pair


def test_masks_are_exactly_the_visible_painted_pixels(world):
    """Read back from the PNGs alone: each colour+shape mask is painted only in that colour (or its shade),
    instances never overlap, and the union of a scene's masks is exactly the set of object-coloured pixels."""
    out, _, gold = world
    object_colours = {c for pair in COLOURS.values() for c in pair}
    by_pair = _annotations_by_pair(gold)
    for media_id, entries in _pairs_by_scene(gold).items():
        pixels = np.asarray(Image.open(out / entries[0]["file_name"]).convert("RGB"))
        is_object = np.logical_or.reduce([(pixels == c).all(axis=-1) for c in object_colours])
        instances: dict[str, np.ndarray] = {}
        for entry in entries:
            attributes = parse_phrase(entry["text_input"]) if entry["phrase_kind"] != "absent" else {}
            for ann in by_pair.get(entry["id"], []):
                mask = rle.decode(ann["segmentation"])
                assert mask.any()
                instances[ann["segmentation"]["counts"]] = mask
                if "colour" in attributes:
                    colour, shade = COLOURS[attributes["colour"]]
                    inside = pixels[mask]
                    assert ((inside == colour).all(-1) | (inside == shade).all(-1)).all(), entry["text_input"]
        masks = list(instances.values())
        for i in range(len(masks)):
            for j in range(i + 1, len(masks)):
                assert not (masks[i] & masks[j]).any(), f"scene {media_id}: two instances overlap"
        assert np.array_equal(np.logical_or.reduce(masks), is_object), f"scene {media_id}: masks != painted pixels"


def test_annotations_are_the_matching_objects_visible_masks(world):
    """Positives carry exactly the visible masks of the objects the phrase describes; negatives carry none."""
    _, _, gold = world
    by_pair = _annotations_by_pair(gold)
    for media_id, entries in _pairs_by_scene(gold).items():
        scene = render_scene(11, media_id)
        texts = {e["text_input"] for e in entries}
        assert {f"{o.colour} {o.shape}" for o in scene.objects} <= texts
        for entry in entries:
            got = sorted(ann["segmentation"]["counts"] for ann in by_pair.get(entry["id"], []))
            if entry["phrase_kind"] == "positive":
                attributes = parse_phrase(entry["text_input"])
                expected = sorted(rle.encode(v)["counts"] for v, o in zip(scene.visible, scene.objects)
                                  if matches(attributes, o))
                assert got == expected and expected, (media_id, entry["text_input"])
            else:
                assert got == [], (media_id, entry["text_input"])


def test_visible_mask_is_full_shape_minus_later_objects():
    for index in range(20):
        scene = render_scene(5, index)
        full = [shape_mask(obj, SIZE) for obj in scene.objects]
        for i, visible in enumerate(scene.visible):
            later = np.logical_or.reduce(full[i + 1 :]) if i + 1 < len(full) else np.zeros_like(visible)
            assert np.array_equal(visible, full[i] & ~later)
            assert visible.sum() >= 0.6 * full[i].sum()
        painted = np.logical_or.reduce(scene.visible)
        background = scene.image[~painted]
        assert background.min() >= 200 and (background.max(axis=-1) - background.min(axis=-1)).max() <= 60


def test_hard_negatives_differ_from_a_present_object_by_one_attribute(world):
    _, _, gold = world
    seen = 0
    for entry in gold["images"]:
        if entry["phrase_kind"] != "hard_negative":
            continue
        seen += 1
        attributes = parse_phrase(entry["text_input"])
        objects = render_scene(11, entry["media_id"]).objects
        assert not any(matches(attributes, o) for o in objects)
        differences = [sum(o.attributes()[k] != v for k, v in attributes.items()) for o in objects]
        assert 1 in differences, entry["text_input"]
    assert seen >= 30  # 1-3 per scene


def test_about_half_of_pairs_are_negative_and_all_phrases_are_in_the_vocabulary(world):
    _, summary, gold = world
    negatives = summary["n_hard_negative"] + summary["n_absent"]
    assert 0.35 <= negatives / summary["n_pairs"] <= 0.65
    vocabulary = set(phrase_vocabulary("shapes"))
    assert {e["text_input"] for e in gold["images"]} <= vocabulary
    per_scene = _pairs_by_scene(gold)
    assert all(1 <= sum(e["phrase_kind"] == "hard_negative" for e in es) <= 3 for es in per_scene.values())


def test_heldout_domain_adds_concepts_and_objects_stay_large_enough(tmp_path):
    summary = generate_world(tmp_path, seed=1, n_images=25, domain="heldout")
    gold = json.loads((tmp_path / "gold.json").read_text())
    assert summary["domain"] == "heldout"
    shapes = {o.shape for i in range(25) for o in render_scene(1, i, domain="heldout").objects}
    assert shapes - set(DOMAINS["shapes"]["shape"]), "held-out scenes should contain new shapes"
    assert set(phrase_vocabulary("shapes")) < set(phrase_vocabulary("heldout"))
    assert {e["text_input"] for e in gold["images"]} <= set(phrase_vocabulary("heldout"))
    for i in range(25):
        for obj in render_scene(1, i, domain="heldout").objects:
            assert obj.radius >= 10


def test_cli_writes_world(tmp_path, capsys):
    assert main(["--seed", "2", "--images", "3", "--out", str(tmp_path), "--size", "160"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_images"] == 3
    assert Image.open(tmp_path / "images" / "scene_00002.png").size == (160, 160)


def test_parse_phrase_rejects_foreign_text():
    assert parse_phrase("large striped red circle") == {"size": "large", "pattern": "striped", "colour": "red",
                                                        "shape": "circle"}
    with pytest.raises(ValueError):
        parse_phrase("red dog")
