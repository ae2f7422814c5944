"""WordNet (the offline default) in the database: the synthetic world's phrases map to real nodes."""
import pytest

from dataengine.taxonomy import queries, services
from dataengine.taxonomy.models import IngestState, Node
from ontology import wordnet

pytestmark = [pytest.mark.pg, pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def wordnet_ingested(db):
    try:
        wordnet.find_folder()
    except wordnet.WordNetError as exc:
        pytest.skip(str(exc))
    return services.ingest_wordnet()


def test_wordnet_ingest_and_the_demo_mapping(wordnet_ingested):
    assert wordnet_ingested.state == IngestState.DONE and wordnet_ingested.entities > 80_000
    taxonomy = queries.current_taxonomy()
    assert len(taxonomy) == Node.objects.count() and taxonomy.roots() == [Node.objects.get(label="entity").id]
    labels = {}
    for phrase in ("red circle", "striped blue square", "triangle", "large dotted yellow star", "hexagon",
                   "heart", "diamond", "dog", "bicycle"):
        node = services.map_synthetic_phrase(phrase)
        labels[phrase] = Node.objects.get(pk=node).label
    assert labels["red circle"] == "circle" and labels["diamond"] == "rhombus" and labels["heart"] == "heart"
    plane_figure = Node.objects.get(label="plane figure").id
    assert taxonomy.is_ancestor(plane_figure, services.map_synthetic_phrase("small green hexagon"))
    with pytest.raises(services.InvalidInput, match="no WordNet noun"):
        services.map_synthetic_phrase("blue zorblax")
