"""The Wikidata dump reader on hand-written fixtures in the real format, plain, gz and bz2, with every quirk."""
import bz2
import gzip
import tracemalloc
from pathlib import Path

import pytest

from ontology.ingest import Checkpoint, ListSink, ingest_dump
from ontology.wikidata import DumpError, read_dump

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "wikidata-sample.json"


def compressed(tmp_path, kind: str, data: bytes | None = None) -> Path:
    data = SAMPLE.read_bytes() if data is None else data
    path = tmp_path / f"dump.json.{kind}"
    path.write_bytes(gzip.compress(data) if kind == "gz" else bz2.compress(data))
    return path


def items(path, **kwargs):
    reader = read_dump(path, **kwargs)
    return {e.id: e for e in reader}, reader


def test_items_are_read_with_their_english_terms_parents_and_sitelinks():
    entities, reader = items(SAMPLE)
    cat = entities["Q146"]
    assert cat.label == "house cat"
    assert cat.aliases == ["cat", "domestic cat", "Felis catus"]
    assert cat.description.startswith('domesticated feline, "Felis catus"')
    assert cat.subclass_of == ["Q7377", "Q39201"]  # a repeated statement counts once
    assert cat.instance_of == [] and cat.sitelinks == 4
    assert reader.report.items == 14 and reader.report.truncated is None


def test_properties_and_lexemes_are_skipped_and_counted():
    entities, reader = items(SAMPLE)
    assert not any(i.startswith(("P", "L")) for i in entities)
    assert (reader.report.properties, reader.report.lexemes) == (2, 1)


def test_quirks_of_real_dumps():
    entities, _ = items(SAMPLE)
    empty = entities["Q2003"]  # labels, descriptions, aliases, claims and sitelinks all written as []
    assert (empty.label, empty.description, empty.aliases, empty.subclass_of, empty.sitelinks) == (None, None, [], [], 0)
    assert entities["Q1001"].label is None  # only a German label
    assert entities["Q1002"].label == "Felis silvestris lybica"  # the language-neutral "mul" label
    assert entities["Q1002"].instance_of == ["Q16521"]  # the novalue P31 snak is not a parent
    assert entities["Q7239"].subclass_of == ["Q223557"]  # the deprecated statement is ignored
    assert entities["Q729"].subclass_of == ["Q7239"]  # neither the somevalue snak nor the P279 qualifier
    assert entities["Q7377"].subclass_of == ["Q729"]  # an old dump's numeric-id without "id"
    assert entities["Q223557"].subclass_of == ["Q35120"]  # preferred rank is kept
    assert entities["Q2001"].subclass_of == ["Q2002", "Q223557"] and entities["Q2002"].subclass_of == ["Q2001"]


@pytest.mark.parametrize("kind", ["gz", "bz2"])
def test_compressed_dumps_read_the_same(tmp_path, kind):
    plain, _ = items(SAMPLE)
    packed, reader = items(compressed(tmp_path, kind))
    assert packed == plain
    assert reader.offset == SAMPLE.stat().st_size


@pytest.mark.parametrize("kind", [None, "gz", "bz2"])
def test_a_truncated_last_line_is_reported_not_fatal(tmp_path, kind):
    data = SAMPLE.read_bytes()
    cut = data[: data.index(b'{"type":"item","id":"Q5"') + 60]  # the download stopped inside Q5
    path = tmp_path / "cut.json"
    path.write_bytes(cut)
    if kind:
        path = compressed(tmp_path, kind, cut)
    entities, reader = items(path)
    assert len(entities) == 13 and "Q5" not in entities
    assert "incomplete" in reader.report.truncated


@pytest.mark.parametrize("kind", ["gz", "bz2"])
def test_a_compressed_stream_cut_short_is_reported(tmp_path, kind):
    path = compressed(tmp_path, kind)
    path.write_bytes(path.read_bytes()[:-200])
    entities, reader = items(path)
    assert reader.report.truncated and len(entities) <= 14  # bz2 loses the whole cut block


def test_a_malformed_line_in_the_middle_stops_with_its_line_number(tmp_path):
    lines = SAMPLE.read_text().splitlines(keepends=True)
    lines[4] = '{"type":"item","id":"Q7239","labels":{"en":oops},\n'
    path = tmp_path / "bad.json"
    path.write_text("".join(lines))
    reader = read_dump(path)
    seen = []
    with pytest.raises(DumpError, match="line 5") as caught:
        for entity in reader:
            seen.append(entity.id)
    assert seen == ["Q35120", "Q223557"]
    assert caught.value.offset == len("".join(lines[:4]).encode())


def test_malformed_lines_can_be_skipped_and_recorded(tmp_path):
    lines = SAMPLE.read_text().splitlines(keepends=True)
    lines[4] = "not json at all,\n"
    lines[6] = "[1, 2, 3],\n"
    path = tmp_path / "bad.json"
    path.write_text("".join(lines))
    entities, reader = items(path, skip_malformed=True)
    assert len(entities) == 12
    assert [m["line"] for m in reader.report.malformed] == [5, 7]


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "PNG"),
    (b"\xfd7zXZ\x00\x00", "xz"),
    (b"PK\x03\x04rest", "zip"),
    (b"", "empty"),
    (b"id,label\nQ1,universe\n", "not a Wikidata JSON dump"),
])
def test_wrong_file_types_are_refused_by_content(tmp_path, content, message):
    path = tmp_path / "dump.json.gz"
    path.write_bytes(content)
    with pytest.raises(DumpError, match=message):
        read_dump(path)


def test_gzip_of_something_else_is_refused(tmp_path):
    path = tmp_path / "dump.json.gz"
    path.write_bytes(gzip.compress(b"hello world\n"))
    with pytest.raises(DumpError, match="not a Wikidata JSON dump"):
        list(read_dump(path))


def test_missing_file():
    with pytest.raises(DumpError, match="no such file"):
        read_dump("/nonexistent/dump.json.gz")


@pytest.mark.parametrize("kind", [None, "bz2"])
def test_a_read_resumes_from_an_offset(tmp_path, kind):
    path = SAMPLE if kind is None else compressed(tmp_path, kind)
    reader = read_dump(path)
    first = []
    for entity in reader:
        first.append(entity.id)
        if len(first) == 5:
            break
    offset, line = reader.offset, reader.line_no
    rest = [e.id for e in read_dump(path, start_offset=offset, start_line=line)]
    assert first + rest == [e.id for e in read_dump(SAMPLE)]
    with pytest.raises(DumpError, match="not at the start of a line"):
        list(read_dump(path, start_offset=offset + 3))


def test_ingest_commits_batches_with_checkpoints_and_keeps_progress_on_a_bad_line(tmp_path):
    lines = SAMPLE.read_text().splitlines(keepends=True)
    lines[10] = "{broken\n"  # line 11: after Q146, Q144 and the lexeme
    path = compressed(tmp_path, "gz", "".join(lines).encode())
    sink = ListSink()
    with pytest.raises(DumpError, match="line 11"):
        ingest_dump(path, sink, batch_size=3)
    assert [e.id for e in sink.entities] == ["Q35120", "Q223557", "Q7239", "Q729", "Q7377", "Q39201", "Q146", "Q144"]
    resume = sink.checkpoints[-1]
    assert resume.offset == len("".join(lines[:10]).encode()) and resume.entities == 8
    # Fixed upstream: the same offsets hold, the read continues where the committed batches ended.
    fixed = compressed(tmp_path, "bz2")
    result = ingest_dump(fixed, sink, resume=resume, batch_size=3)
    assert len(sink.entities) == 14 and result.entities == 6
    assert result.checkpoint == Checkpoint(SAMPLE.stat().st_size, 19, 14)


def _repeat_dump(path: Path, n: int) -> None:
    from tests.ontology.dumpgen import entity
    import json
    import random

    line = json.dumps(entity(random.Random(1), 7, [3]), separators=(",", ":")).encode()
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b"[\n" + b",\n".join([line] * n) + b"\n]\n")


def test_memory_stays_flat_as_the_file_grows(tmp_path, monkeypatch):
    monkeypatch.setattr("ontology.wikidata.PREFETCH_CHUNKS", 2)  # the bound, small enough for small files
    peaks = []
    for n in (500, 5000):
        path = tmp_path / f"d{n}.json.gz"
        _repeat_dump(path, n)
        tracemalloc.start()
        count = sum(1 for _ in read_dump(path))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert count == n
    assert peaks[1] < peaks[0] * 1.5 + 2**20, peaks


def test_a_bad_last_entity_before_the_closing_bracket_is_malformed_not_truncated(tmp_path):
    lines = SAMPLE.read_text().splitlines(keepends=True)
    lines[-2] = lines[-2][:80] + "\n"
    path = tmp_path / "bad-end.json"
    path.write_text("".join(lines))
    with pytest.raises(DumpError, match="line 18"):  # line 19 is the closing ]
        list(read_dump(path))
