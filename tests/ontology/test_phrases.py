"""Phrase normalisation, near-duplicates, groundability and mapping to nodes."""
import numpy as np
import pytest

from ontology.embeddings import HashEmbedder
from ontology.phrases import (
    Lexicon,
    MemoryEmbeddingCache,
    NodeText,
    PhraseMapper,
    check_groundable,
    dedupe_phrases,
    normalize_phrase,
    singularize,
)


@pytest.mark.parametrize("raw, expected", [
    ("  Red   CIRCLE. ", "red circle"),
    ("The dog's collars", "dog collar"),
    ("their cats", "cat"),
    ("a bus", "bus"),
    ("two boxes", "two box"),
    ("cherries", "cherry"),
    ("glass", "glass"),
    ("the", ""),
    ("striped-blue squares!", "striped-blue square"),
])
def test_normalisation(raw, expected):
    assert normalize_phrase(raw) == expected


def test_singular_forms_with_a_lexicon_and_irregular_plurals():
    known = {"mouse", "knife", "box", "church", "city", "glass", "bus"}.__contains__
    exceptions = {"mice": "mouse", "geese": "goose"}
    assert [singularize(w, lexicon=known, exceptions=exceptions) for w in
            ("mice", "knives", "boxes", "churches", "cities", "glasses", "bus", "geese")] == \
        ["mouse", "knife", "box", "church", "city", "glass", "bus", "goose"]


def test_near_duplicates_are_grouped():
    groups = dedupe_phrases(["T-shirt", "t shirt", "tshirts", "red circle", "Red circles", "dog"])
    assert [(g.canonical, len(g.members)) for g in groups] == [("t-shirt", 3), ("red circle", 2), ("dog", 1)]
    by_meaning = dedupe_phrases(["red circle", "circle red"], embedder=HashEmbedder(), threshold=0.99)
    assert len(by_meaning) == 1


def test_ungroundable_phrases_say_why():
    physical = ["wn:object"]
    assert check_groundable("background", node_id="n1").reason.startswith("scene word")
    assert not check_groundable("blurry view", node_id="n1").ok
    assert check_groundable("freedom", node_id=None).reason == "no ontology node matches this phrase"
    assert check_groundable("idea", node_id="n2", ancestors=["wn:abstraction"],
                            groundable_roots=physical).reason.startswith("abstract")
    assert check_groundable("whole", node_id="n3", ancestors=["wn:object"], groundable_roots=physical,
                            depth=3).reason.startswith("too general")
    assert check_groundable("tabby cat", node_id="n4", ancestors=["wn:object"], groundable_roots=physical,
                            depth=12).ok


NODES = [
    NodeText("c1", "circle", (), "ellipse in which the two axes are of equal length; a plane curve", 15),
    NodeText("c2", "circle", ("band", "lot"), "an unofficial association of people or groups", 7),
    NodeText("sq", "square", ("foursquare",), "a plane rectangle with four equal sides", 10),
    NodeText("tc", "tabby cat", ("tabby",), "a cat with a grey or tawny coat mottled with black", 1),
    NodeText("hc", "house cat", ("cat", "domestic cat"), "any domesticated member of the genus Felis", 20),
]


def test_a_free_phrase_maps_to_scored_candidates():
    mapper = PhraseMapper(Lexicon(NODES, senses={"circle": ["c1", "c2"]}), embedder=HashEmbedder(),
                          cache=MemoryEmbeddingCache())
    best = mapper.map("Large striped red circles")
    assert [c.node_id for c in best[:2]] == ["c1", "c2"]  # head noun match; first sense first
    assert best[0].match == "head 'circle'" and 0 < best[0].score <= 1
    cats = mapper.map("the tabby cat")
    assert cats[0].node_id == "tc" and cats[0].lexical == 1.0
    assert mapper.map("cats")[0].node_id == "hc"  # alias, singularised
    assert mapper.map("") == []


def test_node_embeddings_are_computed_once():
    class Counting(HashEmbedder):
        calls = 0

        def encode(self, texts):
            Counting.calls += len(texts)
            return super().encode(texts)

    cache = MemoryEmbeddingCache()
    mapper = PhraseMapper(Lexicon(NODES), embedder=Counting(), cache=cache)
    mapper.map("circle")
    first = Counting.calls
    mapper.map("circle")
    assert Counting.calls == first + 1  # only the phrase itself is embedded again


@pytest.mark.slow
def test_minilm_ranks_the_meaning_not_just_the_word():
    from ontology.embeddings import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    vectors = embedder.encode(["red circle", "a round plane figure", "an association of people"])
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    mapper = PhraseMapper(Lexicon(NODES), embedder=embedder, cache=MemoryEmbeddingCache())
    assert mapper.map("round circle")[0].node_id == "c1"
    assert mapper.map("circle of friends")[0].node_id == "c2"
