"""Training data: (image, phrases with their instance masks) from the synthetic world or an SA-Co snapshot.

Both sources yield ``SceneSample``s; ``collate`` turns a list of them into model inputs and ``Targets``.
The synthetic source renders fresh scenes every step (scene i of world ``seed`` is deterministic), with a
curriculum that starts with mostly positive phrases and ramps hard negatives up to the world's own mix.
The snapshot source reads an SA-Co gold-format JSON (one ``images`` entry per image-phrase pair, COCO RLE
annotations, docs/data-engine.md §7) with its images in a folder or under ``s3://bucket/prefix``.
"""
from __future__ import annotations

import hashlib
import json
import random
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from model import rle as rle_utils
from model.sam3.tokenizer import MAX_TEXT_TOKENS
from model.synthetic import REFERENCE_SIZE, matches, parse_phrase, render_scene
from model.training.loss import Targets


@dataclass
class PhraseTarget:
    """One phrase of a scene and its instance masks [n,H,W] bool (n = 0: a negative); ``kind`` is informative."""

    phrase: str
    masks: np.ndarray
    kind: str = ""


@dataclass
class SceneSample:
    """An image [H,W,3] uint8 and the phrases to train on it."""

    image: np.ndarray
    phrases: list[PhraseTarget] = field(default_factory=list)


@dataclass
class Batch:
    """pixel_values [S,3,R,R]; scene_index [B]; input_ids / attention_mask [B,32]; targets for B pairs."""

    pixel_values: torch.Tensor
    scene_index: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    targets: Targets
    phrases: list[str]


def image_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """[H,W,3] uint8 -> [3,size,size] normalised like Sam3ImageProcessor (bilinear, mean = std = 0.5)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()[None] / 255.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return ((x - 0.5) / 0.5)[0]


def mask_targets(masks: np.ndarray, mask_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[n,H,W] bool -> (soft masks [n,m,m] by area averaging, boxes [n,4] normalised xyxy from the exact masks)."""
    n, height, width = masks.shape
    if n == 0:
        return torch.zeros(0, mask_size, mask_size), torch.zeros(0, 4)
    full = torch.from_numpy(masks).float()
    soft = F.interpolate(full[:, None], size=(mask_size, mask_size), mode="area")[:, 0]
    boxes = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height])
    return soft, torch.tensor(boxes, dtype=torch.float32)


def collate(samples: list[SceneSample], tokenizer: Any, *, image_size: int, mask_size: int) -> Batch:
    """Stack scenes and flatten their phrases into pairs (scene_index says which scene each pair uses)."""
    pixels, scene_index, phrases, masks, boxes = [], [], [], [], []
    for s, sample in enumerate(samples):
        pixels.append(image_tensor(sample.image, image_size))
        for target in sample.phrases:
            soft, box = mask_targets(target.masks, mask_size)
            scene_index.append(s)
            phrases.append(target.phrase)
            masks.append(soft)
            boxes.append(box)
    encoded = tokenizer(phrases, padding="max_length", truncation=True, max_length=MAX_TEXT_TOKENS,
                        return_tensors="pt")
    return Batch(pixel_values=torch.stack(pixels), scene_index=torch.tensor(scene_index, dtype=torch.long),
                 input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
                 targets=Targets(masks=masks, boxes=boxes), phrases=phrases)


class CollatedBatches(torch.utils.data.IterableDataset):
    """Batches ``start .. stop-1`` of ``source``, collated, for a DataLoader with ``batch_size=None``.

    Worker w of n makes steps ``start + w, start + w + n, ...``; the DataLoader takes one batch from each worker
    in turn, so the training loop sees exactly the step order of the in-process path (same data, same curriculum).
    """

    def __init__(self, source: Any, tokenizer: Any, *, image_size: int, mask_size: int, start: int, stop: int):
        super().__init__()
        self.source, self.tokenizer = source, tokenizer
        self.image_size, self.mask_size, self.start, self.stop = image_size, mask_size, start, stop

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is not None:
            torch.set_num_threads(1)  # one core per worker; they run side by side
        for step in range(self.start + worker, self.stop, workers):
            yield collate(self.source.batch(step), self.tokenizer, image_size=self.image_size,
                          mask_size=self.mask_size)


def batch_stream(source: Any, tokenizer: Any, *, image_size: int, mask_size: int, start: int, stop: int,
                 workers: int = 0) -> Iterator[Batch]:
    """Collated batches for steps ``start .. stop-1``, made in ``workers`` processes (0: in this process)."""
    batches = CollatedBatches(source, tokenizer, image_size=image_size, mask_size=mask_size, start=start, stop=stop)
    if workers <= 0:
        return iter(batches)
    return iter(torch.utils.data.DataLoader(batches, batch_size=None, num_workers=workers, prefetch_factor=4,
                                            persistent_workers=False))


# ----------------------------------------------------------------------------------------------
# Synthetic world
# ----------------------------------------------------------------------------------------------


def phrase_masks(scene: Any, phrase: str) -> np.ndarray:
    """Instance masks [n,H,W] of the scene's objects that match ``phrase`` (none for absent nouns)."""
    size = scene.image.shape[0]
    try:
        attributes = parse_phrase(phrase)
    except ValueError:
        return np.zeros((0, size, size), dtype=bool)
    found = [mask for obj, mask in zip(scene.objects, scene.visible) if matches(attributes, obj) and mask.any()]
    return np.stack(found) if found else np.zeros((0, size, size), dtype=bool)


@dataclass
class Curriculum:
    """Share of negative phrases per scene, ramped linearly from ``start`` to ``end`` over ``steps``;
    within negatives, hard ones get ``hard_share`` (the rest name absent shapes or things)."""

    start: float = 0.2
    end: float = 0.5
    steps: int = 2000
    hard_share: float = 0.7

    def negative_fraction(self, step: int) -> float:
        if self.steps <= 0:
            return self.end
        return self.start + (self.end - self.start) * min(1.0, step / self.steps)


class SyntheticScenes:
    """Fresh synthetic scenes: batch ``step`` uses scenes ``step * scenes_per_batch + i`` of world ``seed``."""

    def __init__(self, *, seed: int, domain: str = "shapes", size: int = REFERENCE_SIZE, scenes_per_batch: int = 8,
                 phrases_per_scene: int = 4, curriculum: Curriculum | None = None):
        self.seed, self.domain, self.size = seed, domain, size
        self.scenes_per_batch, self.phrases_per_scene = scenes_per_batch, phrases_per_scene
        self.curriculum = curriculum or Curriculum()

    def scene_sample(self, index: int, step: int) -> SceneSample:
        scene = render_scene(self.seed, index, size=self.size, domain=self.domain)
        rng = random.Random(f"{self.seed}:{index}:phrases")
        positives = [p for p, kind in scene.phrases if kind == "positive"]
        hard = [p for p, kind in scene.phrases if kind == "hard_negative"]
        absent = [p for p, kind in scene.phrases if kind == "absent"]
        negative_fraction = self.curriculum.negative_fraction(step)
        chosen: list[tuple[str, str]] = []
        for _ in range(self.phrases_per_scene):
            if rng.random() < negative_fraction and (hard or absent):
                pool, kind = (hard, "hard_negative") if hard and (rng.random() < self.curriculum.hard_share
                                                                  or not absent) else (absent, "absent")
            else:
                pool, kind = positives, "positive"
            fresh = [p for p in pool if (p, kind) not in chosen]
            chosen.append((rng.choice(fresh or pool), kind))
        return SceneSample(image=scene.image,
                           phrases=[PhraseTarget(p, phrase_masks(scene, p), kind) for p, kind in chosen])

    def batch(self, step: int) -> list[SceneSample]:
        first = step * self.scenes_per_batch
        return [self.scene_sample(first + i, step) for i in range(self.scenes_per_batch)]


# ----------------------------------------------------------------------------------------------
# SA-Co snapshot (gold-format JSON + images)
# ----------------------------------------------------------------------------------------------


def split_s3(uri: str) -> tuple[str, str]:
    parsed = urllib.parse.urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def fetch_uri(uri: str, cache_dir: Path, s3_client: Any = None) -> Path:
    """A local path for a file path, ``file://`` URI or ``s3://bucket/key`` (downloaded once into cache_dir)."""
    if uri.startswith("s3://"):
        if s3_client is None:
            raise ValueError(f"{uri}: an S3 client is needed to read s3://")
        bucket, key = split_s3(uri)
        local = Path(cache_dir) / "s3" / hashlib.sha256(uri.encode()).hexdigest()[:24] / Path(key).name
        if not local.is_file():
            local.parent.mkdir(parents=True, exist_ok=True)
            s3_client.download_file(bucket, key, str(local))
        return local
    if uri.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path))
    return Path(uri)


def join_uri(root: str, name: str) -> str:
    return root.rstrip("/") + "/" + name if "://" in root else str(Path(root) / name)


class SacoSnapshot:
    """Pairs of an SA-Co gold-format JSON grouped by image; images under ``images_root`` (folder or s3://).

    ``snapshot_id`` is the sha256 of the JSON (what a manifest records). Pairs marked
    ``is_instance_exhaustive = 0`` are skipped for negatives (an empty non-exhaustive pair proves nothing).
    """

    def __init__(self, annotations_uri: str, images_root: str, *, cache_dir: str | Path, s3_client: Any = None,
                 scenes_per_batch: int = 8, phrases_per_scene: int = 4, seed: int = 0):
        self.cache_dir, self.s3 = Path(cache_dir), s3_client
        self.images_root = images_root
        path = fetch_uri(annotations_uri, self.cache_dir, s3_client)
        raw = path.read_bytes()
        self.snapshot_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        data = json.loads(raw)
        by_image: dict[int, list[dict]] = defaultdict(list)
        for ann in data.get("annotations", []):
            if not ann.get("iscrowd", 0):
                by_image[ann["image_id"]].append(ann)
        self.files: dict[str, list[tuple[str, list[dict]]]] = defaultdict(list)
        for entry in data["images"]:
            anns = by_image.get(entry["id"], [])
            if not anns and not entry.get("is_instance_exhaustive", 1):
                continue
            self.files[entry["file_name"]].append((entry["text_input"], anns))
        self.names = sorted(self.files)
        if not self.names:
            raise ValueError(f"{annotations_uri}: no usable image-phrase pairs")
        self.n_pairs = sum(len(v) for v in self.files.values())
        self.scenes_per_batch, self.phrases_per_scene, self.seed = scenes_per_batch, phrases_per_scene, seed
        self._images: dict[str, np.ndarray] = {}

    MAX_CACHED_IMAGES = 256

    def load_image(self, name: str) -> np.ndarray:
        """The decoded image (fetched once from storage; the newest MAX_CACHED_IMAGES stay in memory)."""
        if name not in self._images:
            if len(self._images) >= self.MAX_CACHED_IMAGES:
                self._images.pop(next(iter(self._images)))
            local = fetch_uri(join_uri(self.images_root, name), self.cache_dir, self.s3)
            with Image.open(local) as image:
                self._images[name] = np.array(image.convert("RGB"))
        return self._images[name]

    def scene_sample(self, name: str, rng: random.Random) -> SceneSample:
        image = self.load_image(name)
        height, width = image.shape[:2]
        pairs = self.files[name]
        chosen = rng.sample(pairs, min(self.phrases_per_scene, len(pairs)))
        targets = []
        for phrase, anns in chosen:
            masks = [rle_utils.decode(a["segmentation"]).astype(bool) for a in anns]
            stacked = np.stack(masks) if masks else np.zeros((0, height, width), dtype=bool)
            targets.append(PhraseTarget(phrase, stacked, "positive" if masks else "negative"))
        return SceneSample(image=image, phrases=targets)

    def batch(self, step: int) -> list[SceneSample]:
        rng = random.Random(f"{self.seed}:{step}")
        names = [rng.choice(self.names) for _ in range(self.scenes_per_batch)]
        return [self.scene_sample(name, rng) for name in names]

    def __iter__(self) -> Iterator[SceneSample]:
        rng = random.Random(self.seed)
        for name in self.names:
            yield self.scene_sample(name, rng)
