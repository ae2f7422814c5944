"""Hard-negative proposal (taxonomy + embedding routes) and the adversarial filter with a stub SAM 3."""
import numpy as np
import pytest

from model import rle as rle_lib
from ontology.negatives import check_adversarial, propose_negatives
from ontology.taxonomy import Taxonomy

# animal > {cat, dog}; cat > {tabby, siamese}; dog > {chihuahua}; tabby also under "striped thing"
EDGES = [("cat", "animal"), ("dog", "animal"), ("tabby", "cat"), ("siamese", "cat"), ("chihuahua", "dog"),
         ("tabby", "striped thing"), ("zebra", "striped thing"), ("animal", "organism"), ("plant", "organism")]


@pytest.fixture
def graph():
    return Taxonomy.from_edges(EDGES)


def test_candidates_come_from_relatives_never_from_the_lineage(graph):
    candidates = propose_negatives(graph, "siamese", phrase_of=lambda n: n.replace("_", " "),
                                   neighbours=[("cat", 0.9), ("zebra", 0.5), ("plant", 0.4)])
    assert [(c.phrase, c.route) for c in candidates] == [
        ("tabby", "sibling"), ("chihuahua", "cousin"), ("dog", "uncle"), ("zebra", "embedding"),
        ("plant", "embedding")]
    assert candidates[0].reason == "sibling: shares the parent cat"
    assert candidates[1].reason == "cousin: child of dog, a sibling of a parent"
    assert "cat" not in [c.phrase for c in candidates]  # an ancestor is never a negative
    assert [c.phrase for c in propose_negatives(graph, "cat", phrase_of=str, exclude_phrases=["dog"])] == ["plant"]


def _box(x0, y0, x1, y1, size=(40, 40)):
    mask = np.zeros(size, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return rle_lib.encode(mask)


def test_only_candidates_that_sam3_confuses_with_the_positive_are_kept(graph):
    candidates = propose_negatives(graph, "siamese", phrase_of=str)
    predictions = {"tabby": [_box(0, 0, 20, 20)], "chihuahua": [_box(30, 30, 40, 40)], "dog": []}

    def propose(image, phrases):
        return [{"phrase": p, "instances": [{"rle": r, "score": 0.9} for r in predictions[p]]} for p in phrases]

    checks = check_adversarial("image", [_box(0, 0, 20, 22)], candidates, propose=propose, threshold=0.5)
    decisions = {c.candidate.phrase: (c.kept, round(c.overlap, 2), c.reason.split(":")[0]) for c in checks}
    assert decisions == {"tabby": (True, 0.91, "kept"), "chihuahua": (False, 0.0, "discarded"),
                         "dog": (False, 0.0, "discarded")}
    assert "predicts nothing" in next(c.reason for c in checks if c.candidate.phrase == "dog")
