"""The synthetic shapes world: scenes with exact instance masks and SA-Co gold annotations.

A scene holds 1-5 flat-coloured shapes (hard edges, no anti-aliasing) on a light background. Each
object's instance mask is exactly its visible pixels after drawing order, and the image is painted
from those masks, so ground truth is exact by construction. Every scene is a pure function of
``(seed, index, size, domain)``: scene 7 is the same whether 10 or 10,000 scenes are generated.

CLI: ``python -m model.synthetic --seed S --images N --out DIR [--size 224] [--domain shapes|heldout]``
writes ``DIR/images/scene_00000.png ...`` and ``DIR/gold.json`` (SA-Co gold format, docs/data-engine.md §7).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from model import rle as rle_utils
from model.provenance import code_version

WORLD_VERSION = "shapes-world.v1"
REFERENCE_SIZE = 224  # radii below are in pixels at this image size and scale with --size

# Saturated object colours and the darker shade used for stripes and dots. Backgrounds are light and
# unsaturated (channels 200-250), so no background pixel can ever equal an object pixel.
COLOURS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "red": ((220, 40, 40), (130, 15, 15)),
    "green": ((40, 170, 60), (15, 90, 25)),
    "blue": ((40, 80, 220), (15, 35, 120)),
    "yellow": ((235, 205, 30), (150, 125, 10)),
    "purple": ((140, 60, 190), (75, 25, 105)),
    "orange": ((245, 135, 25), (150, 75, 5)),
}
DOMAINS: dict[str, dict[str, tuple[str, ...]]] = {
    "shapes": {
        "shape": ("circle", "square", "triangle", "star"),
        "colour": ("red", "green", "blue", "yellow"),
    },
    "heldout": {
        "shape": ("circle", "square", "triangle", "star", "hexagon", "diamond", "heart"),
        "colour": ("red", "green", "blue", "yellow", "purple", "orange"),
    },
}
PATTERNS = ("solid", "striped", "dotted")
SIZES = ("small", "large")
SMALL_RADIUS = (10.0, 16.0)  # never below ~10 px at 224 px
LARGE_RADIUS = (22.0, 34.0)
# Things that never occur in this world: the "absent concept" negatives.
ABSENT_NOUNS = ("dog", "car", "person", "tree", "cup", "bicycle")
# Attribute order inside a phrase, e.g. "large striped red circle".
ATTRIBUTE_ORDER = ("size", "pattern", "colour", "shape")
TEMPLATES: tuple[tuple[str, ...], ...] = (
    ("shape",),
    ("colour", "shape"),
    ("pattern", "shape"),
    ("pattern", "colour", "shape"),
    ("size", "shape"),
    ("size", "colour", "shape"),
)
MAX_OBJECTS = 5
MIN_VISIBLE_FRACTION = 0.6  # an earlier object keeps at least this share of its pixels when overlapped


@dataclass(frozen=True)
class ShapeObject:
    """One object: its attributes and geometry (centre and radius in pixels, angle in degrees)."""

    shape: str
    colour: str
    pattern: str
    size: str
    cx: float
    cy: float
    radius: float
    angle: float

    def attributes(self) -> dict[str, str]:
        return {"shape": self.shape, "colour": self.colour, "pattern": self.pattern, "size": self.size}


@dataclass
class Scene:
    """A rendered scene. ``image`` is (H, W, 3) uint8; ``visible[i]`` is object i's (H, W) bool mask.

    ``phrases`` lists ``(noun phrase, kind)`` with kind "positive" | "hard_negative" | "absent".
    """

    index: int
    image: np.ndarray
    objects: list[ShapeObject]
    visible: list[np.ndarray]
    phrases: list[tuple[str, str]] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Phrases
# ----------------------------------------------------------------------------------------------


def _values(domain: str) -> dict[str, tuple[str, ...]]:
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {sorted(DOMAINS)}")
    return {**DOMAINS[domain], "pattern": PATTERNS, "size": SIZES}


def phrase_text(attributes: dict[str, str]) -> str:
    """Render attributes as a noun phrase in canonical order ("striped blue square")."""
    return " ".join(attributes[key] for key in ATTRIBUTE_ORDER if key in attributes)


def parse_phrase(phrase: str) -> dict[str, str]:
    """Inverse of phrase_text for phrases of this world. Raises ValueError for anything else."""
    lookup = {}
    for domain in DOMAINS:
        for key, values in _values(domain).items():
            lookup.update({value: key for value in values})
    attributes: dict[str, str] = {}
    for word in phrase.split():
        key = lookup.get(word)
        if key is None or key in attributes:
            raise ValueError(f"{phrase!r} is not a phrase of the synthetic world")
        attributes[key] = word
    if "shape" not in attributes:
        raise ValueError(f"{phrase!r} names no shape")
    return attributes


def matches(attributes: dict[str, str], obj: ShapeObject) -> bool:
    """True when the object has every attribute the phrase names."""
    own = obj.attributes()
    return all(own[key] == value for key, value in attributes.items())


def phrase_vocabulary(domain: str = "shapes") -> list[str]:
    """Every phrase the world can produce for ``domain`` (sorted): all template fillings plus absent nouns."""
    values = _values(domain)
    phrases = set(ABSENT_NOUNS)
    for template in TEMPLATES:
        for combo in itertools.product(*(values[key] for key in template)):
            phrases.add(phrase_text(dict(zip(template, combo))))
    return sorted(phrases)


def _choose_phrases(objects: list[ShapeObject], domain: str, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Positives (every colour+shape present, plus 0-2 other templates), then as many negatives.

    Hard negatives change one attribute of a present object's phrase and have zero instances;
    absent negatives name a shape or thing not in the scene at all. Roughly half the pairs are negative.
    """
    values = _values(domain)
    positives: list[str] = []
    for obj in objects:
        text = phrase_text({"colour": obj.colour, "shape": obj.shape})
        if text not in positives:
            positives.append(text)
    for _ in range(int(rng.integers(0, 3))):
        obj = objects[int(rng.integers(len(objects)))]
        template = TEMPLATES[int(rng.choice([0, 2, 3, 4, 5]))]
        text = phrase_text({key: obj.attributes()[key] for key in template})
        if text not in positives:
            positives.append(text)

    def has_instances(attributes: dict[str, str]) -> bool:
        return any(matches(attributes, obj) for obj in objects)

    n_negatives = len(positives)
    n_hard = min(int(rng.integers(1, 4)), n_negatives)
    hard: list[str] = []
    for _ in range(50):
        if len(hard) == n_hard:
            break
        obj = objects[int(rng.integers(len(objects)))]
        template = TEMPLATES[int(rng.choice([1, 1, 1, 3, 5]))]  # mostly colour+shape
        attributes = {key: obj.attributes()[key] for key in template}
        changed = str(rng.choice(list(template)))
        alternatives = [v for v in values[changed] if v != attributes[changed]]
        attributes[changed] = str(rng.choice(alternatives))
        text = phrase_text(attributes)
        if not has_instances(attributes) and text not in hard:
            hard.append(text)

    absent: list[str] = []
    missing_shapes = [s for s in values["shape"] if not has_instances({"shape": s})]
    candidates = missing_shapes + list(ABSENT_NOUNS)
    for _ in range(n_negatives - len(hard)):
        text = str(rng.choice(candidates))
        if text not in absent:
            absent.append(text)

    return (
        [(p, "positive") for p in positives]
        + [(p, "hard_negative") for p in hard]
        + [(p, "absent") for p in absent]
    )


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------


def _regular_polygon(cx: float, cy: float, r: float, n: int, angle: float) -> list[tuple[float, float]]:
    a0 = np.deg2rad(angle) - np.pi / 2  # first vertex points up
    return [(cx + r * np.cos(a0 + 2 * np.pi * k / n), cy + r * np.sin(a0 + 2 * np.pi * k / n)) for k in range(n)]


def _polygon_mask(points: list[tuple[float, float]], size: int) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in points], fill=1)
    return np.asarray(canvas, dtype=bool)


def shape_mask(obj: ShapeObject, size: int) -> np.ndarray:
    """The object's full (unoccluded) region as an (size, size) bool mask."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # pixel centres
    dx, dy = xx - obj.cx, yy - obj.cy
    r = obj.radius
    if obj.shape == "circle":
        return dx**2 + dy**2 <= r**2
    if obj.shape == "heart":
        # Implicit heart curve (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, y up, scaled to fit the radius.
        x, y = dx / (0.85 * r), -(dy / (0.85 * r)) + 0.15
        return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0
    if obj.shape == "square":
        return _polygon_mask(_regular_polygon(obj.cx, obj.cy, r, 4, obj.angle + 45), size)
    if obj.shape == "triangle":
        return _polygon_mask(_regular_polygon(obj.cx, obj.cy, r, 3, obj.angle), size)
    if obj.shape == "hexagon":
        return _polygon_mask(_regular_polygon(obj.cx, obj.cy, r, 6, obj.angle), size)
    if obj.shape == "diamond":
        # A rhombus, taller than wide, so it is never a rotated square.
        return _polygon_mask([(obj.cx, obj.cy - r), (obj.cx + 0.6 * r, obj.cy), (obj.cx, obj.cy + r),
                              (obj.cx - 0.6 * r, obj.cy)], size)
    if obj.shape == "star":
        outer = _regular_polygon(obj.cx, obj.cy, r, 5, obj.angle)
        inner = _regular_polygon(obj.cx, obj.cy, 0.45 * r, 5, obj.angle + 36)
        return _polygon_mask([p for pair in zip(outer, inner) for p in pair], size)
    raise ValueError(f"unknown shape {obj.shape!r}")


def _pattern_mask(pattern: str, size: int, scale: float) -> np.ndarray:
    """Pixels painted in the shade colour for a pattern (over the whole canvas; clipped by the object)."""
    yy, xx = np.mgrid[0:size, 0:size]
    if pattern == "solid":
        return np.zeros((size, size), dtype=bool)
    if pattern == "striped":
        period = max(4, round(6 * scale))
        return ((xx + yy) // (period // 2)) % 2 == 0
    if pattern == "dotted":
        spacing = max(5, round(8 * scale))
        dot = max(1.5, 2.0 * scale)
        ox, oy = xx % spacing - spacing / 2, yy % spacing - spacing / 2
        return ox**2 + oy**2 <= dot**2
    raise ValueError(f"unknown pattern {pattern!r}")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Plain or lightly textured light background, channels in [200, 250]."""
    base = rng.integers(215, 241, size=3)
    image = np.broadcast_to(base, (size, size, 3)).astype(np.int16)
    if rng.random() < 0.5:
        noise = rng.integers(-8, 9, size=(size, size, 1))
        image = image + noise
    return np.clip(image, 200, 250).astype(np.uint8)


def render_scene(seed: int, index: int, *, size: int = REFERENCE_SIZE, domain: str = "shapes") -> Scene:
    """Render scene ``index`` of the world ``seed``: image, objects, visible masks and phrases."""
    values = _values(domain)
    rng = np.random.default_rng([seed, index, size, list(DOMAINS).index(domain)])
    scale = size / REFERENCE_SIZE
    image = _background(rng, size)
    n_objects = int(rng.integers(1, MAX_OBJECTS + 1))

    objects: list[ShapeObject] = []
    full: list[np.ndarray] = []
    for _ in range(n_objects):
        for _attempt in range(60):
            size_name = str(rng.choice(SIZES))
            lo, hi = SMALL_RADIUS if size_name == "small" else LARGE_RADIUS
            radius = float(rng.uniform(lo, hi)) * scale
            margin = radius + 2
            obj = ShapeObject(
                shape=str(rng.choice(values["shape"])),
                colour=str(rng.choice(values["colour"])),
                pattern=str(rng.choice(PATTERNS)),
                size=size_name,
                cx=float(rng.uniform(margin, size - margin)),
                cy=float(rng.uniform(margin, size - margin)),
                radius=radius,
                angle=float(rng.uniform(-15, 15)),
            )
            # Centres far enough apart that objects at most touch or overlap slightly.
            if any(np.hypot(obj.cx - o.cx, obj.cy - o.cy) < 0.75 * (obj.radius + o.radius) for o in objects):
                continue
            mask = shape_mask(obj, size)
            if all((m & ~mask).sum() >= MIN_VISIBLE_FRACTION * m.sum() for m in full):
                objects.append(obj)
                full.append(mask)
                break

    # Visible pixels: later objects are drawn on top of earlier ones.
    visible = []
    covered = np.zeros((size, size), dtype=bool)
    for mask in reversed(full):
        visible.append(mask & ~covered)
        covered |= mask
    visible.reverse()

    for obj, mask in zip(objects, visible):
        colour, shade = COLOURS[obj.colour]
        shaded = mask & _pattern_mask(obj.pattern, size, scale)
        image[mask & ~shaded] = colour
        image[shaded] = shade

    phrases = _choose_phrases(objects, domain, rng)
    return Scene(index=index, image=image, objects=objects, visible=visible, phrases=phrases)


# ----------------------------------------------------------------------------------------------
# SA-Co gold export
# ----------------------------------------------------------------------------------------------


def generate_world(out_dir: str | Path, *, seed: int, n_images: int, size: int = REFERENCE_SIZE,
                   domain: str = "shapes") -> dict:
    """Write ``n_images`` scenes to ``out_dir/images/`` and ``out_dir/gold.json``; return a summary dict.

    gold.json: one ``images`` entry per (scene, phrase) pair with the SA-Co gold fields plus
    ``phrase_kind`` and ``media_id`` (the scene index); ``annotations`` hold each matching object's
    visible mask (compressed RLE), normalised bbox [x, y, w, h] and normalised area.
    """
    if n_images < 0:
        raise ValueError("n_images must be >= 0")
    _values(domain)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images: list[dict] = []
    annotations: list[dict] = []
    kinds = {"positive": 0, "hard_negative": 0, "absent": 0}
    for index in range(n_images):
        scene = render_scene(seed, index, size=size, domain=domain)
        file_name = f"images/scene_{index:05d}.png"
        Image.fromarray(scene.image).save(out / file_name)
        for phrase, kind in scene.phrases:
            image_id = len(images) + 1  # ids start at 1: COCO evaluation treats id 0 as "unmatched"
            images.append({
                "id": image_id,
                "file_name": file_name,
                "text_input": phrase,
                "width": size,
                "height": size,
                "queried_category": phrase,
                "is_instance_exhaustive": 1,
                "is_pixel_exhaustive": 1,
                "phrase_kind": kind,
                "media_id": index,
            })
            kinds[kind] += 1
            if kind != "positive":
                continue
            attributes = parse_phrase(phrase)
            for obj, mask in zip(scene.objects, scene.visible):
                if not matches(attributes, obj):
                    continue
                encoded = rle_utils.encode(mask)
                x, y, w, h = rle_utils.bbox_xywh(encoded)
                annotations.append({
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "bbox": [x / size, y / size, w / size, h / size],
                    "segmentation": encoded,
                    "area": float(mask.sum()) / (size * size),
                    "category_id": 1,
                    "iscrowd": 0,
                    "source": "manual",
                })
    gold = {
        "info": {
            "generator": "model.synthetic",
            "world_version": WORLD_VERSION,
            "code_version": code_version(),
            "seed": seed,
            "domain": domain,
            "size": size,
            "n_images": n_images,
        },
        "categories": [{"id": 1, "name": "object"}],
        "images": images,
        "annotations": annotations,
    }
    (out / "gold.json").write_text(json.dumps(gold))
    return {
        "out_dir": str(out),
        "gold": str(out / "gold.json"),
        "seed": seed,
        "domain": domain,
        "n_images": n_images,
        "n_pairs": len(images),
        "n_positive": kinds["positive"],
        "n_hard_negative": kinds["hard_negative"],
        "n_absent": kinds["absent"],
        "n_annotations": len(annotations),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--images", type=int, required=True, help="number of scenes")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--size", type=int, default=REFERENCE_SIZE, help="image side in pixels")
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="shapes")
    args = parser.parse_args(argv)
    if args.size < 112:
        parser.error("--size must be >= 112 (objects need room)")
    if args.seed < 0 or args.images < 0:
        parser.error("--seed and --images must be >= 0")
    summary = generate_world(args.out, seed=args.seed, n_images=args.images, size=args.size, domain=args.domain)
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
