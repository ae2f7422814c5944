"""The synthetic world's answers: gold.json (SA-Co format) indexed by (image sha256, phrase)."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator


def phrase_key(text: str) -> str:
    """The platform's phrase normalisation (lower case, single spaces, no surrounding punctuation)."""
    return re.sub(r"\s+", " ", text).strip().strip(".,;:!?\"'").strip().lower()


@dataclass(frozen=True)
class GroundTruthPair:
    """One (image, phrase) pair of the world; ``instances`` are COCO RLEs, empty for a negative."""

    image_id: int
    file_name: str
    sha256: str
    phrase: str
    phrase_kind: str
    width: int
    height: int
    instances: tuple[dict, ...]
    iscrowd: tuple[bool, ...]

    @property
    def is_positive(self) -> bool:
        return bool(self.instances)

    @property
    def key(self) -> tuple[str, str]:
        return (self.sha256, phrase_key(self.phrase))


class GroundTruth:
    """Lookup of the true instances by (image sha256, phrase), by gold image id and by file name."""

    def __init__(self, pairs: Iterable[GroundTruthPair]):
        self._pairs: dict[tuple[str, str], GroundTruthPair] = {}
        self._by_image_id: dict[int, GroundTruthPair] = {}
        self._sha_by_name: dict[str, str] = {}
        for pair in pairs:
            if pair.key in self._pairs:
                raise ValueError(f"ground truth has the pair {pair.key} twice")
            self._pairs[pair.key] = pair
            self._by_image_id[pair.image_id] = pair
            self._sha_by_name[Path(pair.file_name).name] = pair.sha256

    @classmethod
    def from_gold(cls, gold_path: str | Path) -> "GroundTruth":
        """Read DIR/gold.json and hash each image under DIR (sha256 of the file's bytes)."""
        gold_path = Path(gold_path)
        document = json.loads(gold_path.read_text())
        by_image: dict[int, list[dict]] = {}
        for ann in document.get("annotations", []):
            by_image.setdefault(ann["image_id"], []).append(ann)
        hashes: dict[str, str] = {}
        pairs = []
        for entry in document["images"]:
            file_name = entry["file_name"]
            if file_name not in hashes:
                hashes[file_name] = hashlib.sha256((gold_path.parent / file_name).read_bytes()).hexdigest()
            anns = sorted(by_image.get(entry["id"], []), key=lambda a: a["id"])
            pairs.append(GroundTruthPair(
                image_id=entry["id"], file_name=file_name, sha256=hashes[file_name], phrase=entry["text_input"],
                phrase_kind=entry.get("phrase_kind", "positive" if anns else "negative"),
                width=int(entry["width"]), height=int(entry["height"]),
                instances=tuple(a["segmentation"] for a in anns),
                iscrowd=tuple(bool(a.get("iscrowd", 0)) for a in anns),
            ))
        return cls(pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __iter__(self) -> Iterator[GroundTruthPair]:
        return iter(self._pairs.values())

    def lookup(self, sha256: str, phrase: str) -> GroundTruthPair | None:
        return self._pairs.get((sha256, phrase_key(phrase)))

    def by_image_id(self, image_id: int) -> GroundTruthPair | None:
        """The pair of gold.json's ``images[].id``."""
        return self._by_image_id.get(image_id)

    def sha256_for_name(self, file_name: str) -> str | None:
        """The image hash of a file name (matched on its base name)."""
        return self._sha_by_name.get(Path(file_name).name)

    def for_media(self, media: dict, phrase: str) -> GroundTruthPair | None:
        """The pair for an API media object ({sha256, name, ...}); falls back to the file name."""
        pair = self.lookup(media.get("sha256") or "", phrase)
        if pair is None and media.get("name"):
            sha = self.sha256_for_name(media["name"])
            pair = self.lookup(sha, phrase) if sha else None
        return pair
