"""The ontology in the database: the hand-written Wikidata fixture (a DAG with several parents and a cycle)."""
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "ontology" / "fixtures"
SAMPLE = FIXTURES / "wikidata-sample.json"


@pytest.fixture
def sample_dump(tmp_path):
    path = tmp_path / "wikidata-sample.json"
    shutil.copy(SAMPLE, path)
    return path


@pytest.fixture
def sample_graph(db, sample_dump, django_capture_on_commit_callbacks):
    """The fixture dump ingested through the same service the cpu task runs."""
    from dataengine.taxonomy import services

    with django_capture_on_commit_callbacks(execute=False):
        run = services.request_dump_ingest(str(sample_dump))
    return services.run_dump_ingest(run.pk)


@pytest.fixture
def hash_embedder(monkeypatch):
    """A fast bag-of-words embedder instead of MiniLM (the real model is tested in tests/ontology)."""
    from dataengine.taxonomy import services
    from ontology.embeddings import HashEmbedder

    embedder = HashEmbedder()
    monkeypatch.setattr(services, "get_embedder", lambda: embedder)
    return embedder
