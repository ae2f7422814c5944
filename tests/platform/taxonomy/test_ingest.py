"""Dump ingest into PostgreSQL: batches with COPY, resumable from the committed offset, clear errors."""
import bz2
import gzip

import pytest

from dataengine.taxonomy import services
from dataengine.taxonomy.models import Edge, IngestRun, IngestState, Node
from tests.conftest import token_client

pytestmark = [pytest.mark.pg, pytest.mark.django_db]


def request(path, **kwargs):
    return services.request_dump_ingest(str(path), **kwargs)


def test_a_dump_lands_in_the_node_and_edge_tables(sample_graph):
    assert sample_graph.state == IngestState.DONE
    assert (sample_graph.entities, Node.objects.count()) == (14, 14)
    assert sample_graph.report["properties"] == 2 and sample_graph.report["lexemes"] == 1
    cat = Node.objects.get(pk="Q146")
    assert (cat.label, cat.aliases, cat.sitelinks) == ("house cat", ["cat", "domestic cat", "Felis catus"], 4)
    assert Node.objects.get(pk="Q2003").label is None
    assert set(Edge.objects.filter(child="Q146").values_list("parent", "kind")) == {("Q7377", "s"), ("Q39201", "s")}
    assert Edge.objects.filter(child="Q1002", kind="i").get().parent == "Q16521"


@pytest.mark.parametrize("kind", ["gz", "bz2"])
def test_compressed_dumps_and_reingest_replace_rather_than_duplicate(sample_graph, sample_dump, tmp_path, kind,
                                                                     django_capture_on_commit_callbacks):
    data = sample_dump.read_bytes()
    path = tmp_path / f"dump.json.{kind}"
    path.write_bytes(gzip.compress(data) if kind == "gz" else bz2.compress(data))
    with django_capture_on_commit_callbacks(execute=False):
        run = request(path)
    run = services.run_dump_ingest(run.pk, batch_size=4)
    assert run.state == IngestState.DONE and run.offset == len(data)
    assert Node.objects.count() == 14 and Edge.objects.count() == 16


def test_a_malformed_line_fails_the_run_keeping_committed_batches_then_it_resumes(
        sample_dump, django_capture_on_commit_callbacks):
    lines = sample_dump.read_text().splitlines(keepends=True)
    good = lines[8]
    lines[8] = '{"type":"item","id":"Q146","labels":\n'  # line 9: Q146 is damaged
    sample_dump.write_text("".join(lines))
    with django_capture_on_commit_callbacks(execute=False):
        run = request(sample_dump)
    run = services.run_dump_ingest(run.pk, batch_size=2)
    assert run.state == IngestState.FAILED and "line 9" in run.error
    assert sorted(Node.objects.values_list("id", flat=True)) == sorted(
        ["Q35120", "Q223557", "Q7239", "Q729", "Q7377", "Q39201"])  # every entity before the bad line
    assert run.offset == len("".join(lines[:8]).encode()) and run.entities == 6
    lines[8] = good  # repaired in place: the same byte offsets
    sample_dump.write_text("".join(lines))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.resume_dump_ingest(run)
    assert len(callbacks) == 1
    run.refresh_from_db()
    assert run.state == IngestState.DONE and Node.objects.count() == 14 and run.entities == 14


def test_a_truncated_download_is_reported_and_everything_before_it_kept(sample_dump, tmp_path,
                                                                         django_capture_on_commit_callbacks):
    data = sample_dump.read_bytes()
    path = tmp_path / "cut.json.gz"
    path.write_bytes(gzip.compress(data[:-150]))
    with django_capture_on_commit_callbacks(execute=False):
        run = request(path)
    run = services.run_dump_ingest(run.pk)
    assert run.state == IngestState.DONE and "incomplete" in run.report["truncated"]
    assert Node.objects.count() == 13


def test_the_ingest_api_is_for_staff_and_checks_the_file_type(staff, alice, tmp_path, sample_dump,
                                                               django_capture_on_commit_callbacks):
    png = tmp_path / "latest-all.json.gz"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    assert token_client(alice).post("/api/ontology/ingests/", {"path": str(sample_dump)},
                                    format="json").status_code == 403
    client = token_client(staff)
    response = client.post("/api/ontology/ingests/", {"path": str(png)}, format="json")
    assert response.status_code == 400 and "PNG" in response.json()["message"]
    assert client.post("/api/ontology/ingests/", {"path": str(tmp_path / "nope.json")},
                       format="json").status_code == 400
    assert not IngestRun.objects.exists()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/api/ontology/ingests/", {"path": str(sample_dump)}, format="json")
    assert response.status_code == 202 and response.json()["state"] == "queued" and len(callbacks) == 1
    assert client.get(f"/api/ontology/ingests/{response.json()['id']}/").json()["path"] == str(sample_dump)


def test_the_management_command_ingests_and_explains_failures(sample_dump, tmp_path):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("ingest_ontology", "wikidata", str(sample_dump), stdout=out)
    assert "14 entities" in out.getvalue()
    bad = tmp_path / "bad.json"
    bad.write_text(sample_dump.read_text().replace('"id":"Q5"', '"id":"Q5",,'))
    with pytest.raises(CommandError, match=r"failed at offset .* --resume"):
        call_command("ingest_ontology", "wikidata", str(bad))
