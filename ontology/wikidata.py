"""Streaming reader for Wikidata JSON dumps (``.json``, ``.json.gz``, ``.json.bz2``) in constant memory.

The dump is one JSON array with one entity per line: ``[``, then ``{...},`` lines, the last entity
without the comma, then ``]``. ``read_dump`` yields an :class:`~ontology.entities.Entity` per *item*
(properties, lexemes and other entity types are counted and skipped).

Speed: decompression runs in a background thread (zlib and bz2 release the GIL), so it overlaps with
parsing; each line is decoded by msgspec into typed structs that name only the fields we keep — every other
language, property and sitelink body is skipped by the decoder without building Python objects.

Quirks handled: empty maps written as ``[]``; items without an English label (``label=None``; the
language-neutral ``mul`` label is used when present); deprecated statements and ``somevalue``/``novalue``
snaks ignored; old dumps with only ``numeric-id``; a truncated last line or a compressed stream cut short
(recorded in ``report.truncated``, not raised). A malformed line elsewhere raises :class:`DumpError`
with its line number and byte offset, unless ``skip_malformed`` (then it is recorded in ``report.malformed``).

Offsets are byte positions in the *decompressed* stream, always at a line start: ``reader.offset`` after
an entity is where a later run resumes (``read_dump(path, start_offset=...)``).
"""
from __future__ import annotations

import bz2
import os
import zlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ontology.entities import Entity, OntologyError

CHUNK_BYTES = 1 << 20
# Decompressed chunks that may wait for the parser: decompression keeps going while a batch is written to the
# database (bounded, so memory stays flat: at most PREFETCH_CHUNKS MB in flight).
PREFETCH_CHUNKS = 32
KEPT_RANKS = ("normal", "preferred")
MAX_MALFORMED_RECORDED = 100


class DumpError(OntologyError):
    """The dump cannot be read here: wrong file type, or a malformed line (``line``, ``offset`` say where)."""

    def __init__(self, message: str, *, line: int | None = None, offset: int | None = None):
        where = f" (line {line}, byte offset {offset})" if line is not None else ""
        super().__init__(message + where)
        self.line, self.offset = line, offset


@dataclass
class DumpReport:
    """What a read saw besides the items it yielded."""

    lines: int = 0
    items: int = 0
    properties: int = 0
    lexemes: int = 0
    other: int = 0
    malformed: list[dict] = field(default_factory=list)
    malformed_count: int = 0
    truncated: str | None = None

    def as_dict(self) -> dict:
        return {"lines": self.lines, "items": self.items, "properties": self.properties, "lexemes": self.lexemes,
                "other": self.other, "malformed_count": self.malformed_count, "malformed": self.malformed,
                "truncated": self.truncated}


# ---------------------------------------------------------------- the fields we keep (everything else is skipped)

class _Term(msgspec.Struct):
    value: str = ""


class _Terms(msgspec.Struct):
    en: _Term | None = None
    mul: _Term | None = None


class _AliasTerms(msgspec.Struct):
    en: list[_Term] = []


class _EntityRef(msgspec.Struct):
    id: str | None = None
    numeric_id: int | None = msgspec.field(name="numeric-id", default=None)


class _DataValue(msgspec.Struct):
    value: _EntityRef | str | float | list | None = None


class _Snak(msgspec.Struct):
    snaktype: str = "value"
    datavalue: _DataValue | None = None


class _Statement(msgspec.Struct):
    mainsnak: _Snak | None = None
    rank: str = "normal"


class _Claims(msgspec.Struct):
    P279: list[_Statement] = []
    P31: list[_Statement] = []


class _Nothing(msgspec.Struct):
    pass


class _RawEntity(msgspec.Struct):
    type: str = ""
    id: str = ""
    labels: _Terms | list = []
    descriptions: _Terms | list = []
    aliases: _AliasTerms | list = []
    claims: _Claims | list = []
    sitelinks: dict[str, _Nothing] | list = []


_decoder = msgspec.json.Decoder(_RawEntity)


def _targets(statements: list[_Statement]) -> list[str]:
    out: list[str] = []
    for statement in statements:
        snak = statement.mainsnak
        if statement.rank not in KEPT_RANKS or snak is None or snak.snaktype != "value" or snak.datavalue is None:
            continue
        value = snak.datavalue.value
        if not isinstance(value, _EntityRef):
            continue
        target = value.id or (f"Q{value.numeric_id}" if value.numeric_id is not None else None)
        if target and target not in out:
            out.append(target)
    return out


def _term(terms: _Terms | list) -> str | None:
    if isinstance(terms, list):
        return None
    term = terms.en or terms.mul
    return term.value if term is not None else None


def entity_from_json(line: bytes | str) -> Entity | str:
    """An Entity for an item line, else the entity's type (``"property"``, ``"lexeme"`` ...).

    Raises msgspec.DecodeError for a line that is not a JSON entity object.
    """
    raw = _decoder.decode(line)
    if raw.type != "item":
        if not raw.type:
            raise msgspec.DecodeError('entity has no "type"')
        return raw.type
    if not raw.id:
        raise msgspec.DecodeError('item has no "id"')
    claims = raw.claims if isinstance(raw.claims, _Claims) else None
    aliases = raw.aliases.en if isinstance(raw.aliases, _AliasTerms) else []
    return Entity(
        id=raw.id,
        label=_term(raw.labels),
        aliases=[a.value for a in aliases if a.value],
        description=_term(raw.descriptions),
        subclass_of=_targets(claims.P279) if claims else [],
        instance_of=_targets(claims.P31) if claims else [],
        sitelinks=len(raw.sitelinks),
    )


# ---------------------------------------------------------------- files

def sniff_format(path: str | Path) -> str:
    """``"gzip"``, ``"bz2"`` or ``"json"`` from the file's first bytes; DumpError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DumpError(f"{path}: no such file")
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    known = {b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip", b"(\xb5/\xfd": "zstd", b"\x89PNG": "PNG",
             b"%PDF": "PDF", b"\xff\xd8\xff": "JPEG"}
    for magic, name in known.items():
        if head.startswith(magic):
            raise DumpError(f"{path}: a {name} file, not a Wikidata JSON dump (.json, .json.gz or .json.bz2)")
    stripped = head.lstrip(b" \t\r\n\xef\xbb\xbf")
    if not head:
        raise DumpError(f"{path}: empty file, not a Wikidata JSON dump")
    if not stripped[:1] in (b"[", b"{"):
        raise DumpError(f"{path}: not a Wikidata JSON dump (expected '[' or an entity object at the start)")
    return "json"




class _Chunks:
    """Decompressed chunks from a background thread; ``compressed_pos`` follows the file position read so far."""

    _END = object()

    def __init__(self, path: Path, kind: str, chunk_bytes: int = CHUNK_BYTES, depth: int | None = None):
        self.path, self.kind = path, kind
        self.compressed_size = path.stat().st_size
        self.compressed_pos = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(depth or PREFETCH_CHUNKS)
        self._stop = threading.Event()
        self._chunk_bytes = chunk_bytes
        self._thread = threading.Thread(target=self._run, name="dump-decompress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with open(self.path, "rb") as raw:
                if self.kind == "json":
                    while not self._stop.is_set():
                        data = raw.read(self._chunk_bytes)
                        if not data:
                            break
                        self._put((data, raw.tell()))
                else:
                    self._decompress(raw)
        except BaseException as exc:  # handed to the consumer, which decides (EOFError = truncated file)
            self._put(exc)
        self._put(self._END)

    def _decompressor(self):
        return zlib.decompressobj(31) if self.kind == "gzip" else bz2.BZ2Decompressor()

    def _decompress(self, raw) -> None:
        """Stream-decompress every member (multi-member gzip, multi-stream bz2), output in bounded pieces.
        Raises EOFError when the file ends inside a member (a cut-off download)."""
        limit = self._chunk_bytes
        decompressor, inside = self._decompressor(), False
        while not self._stop.is_set():
            data = raw.read(self._chunk_bytes)
            if not data:
                break
            inside = True
            while not self._stop.is_set():
                out = decompressor.decompress(data, limit)
                if out:
                    self._put((out, raw.tell()))
                if decompressor.eof:
                    data = decompressor.unused_data
                    decompressor, inside = self._decompressor(), bool(data)
                    if not data:
                        break
                    continue
                if self.kind == "gzip":
                    data = decompressor.unconsumed_tail
                    if not data:
                        break
                elif decompressor.needs_input:
                    break
                else:
                    data = b""
        if inside and not self._stop.is_set():
            raise EOFError("the compressed file ended inside a stream")

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                self.error = item
                return
            data, self.compressed_pos = item
            yield data

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()


class DumpReader:
    """Iterate to get the items of a dump; ``offset``, ``line_no`` and ``report`` follow the read.

    ``start_offset`` must be a line start (a value ``offset`` had before); ``start_line`` is only used to
    number lines in messages after a resume.
    """

    def __init__(self, path: str | Path, *, start_offset: int = 0, start_line: int = 0, skip_malformed: bool = False):
        self.path = Path(path)
        self.kind = sniff_format(self.path)
        if start_offset < 0:
            raise DumpError(f"start offset {start_offset} is negative")
        self.start_offset = start_offset
        self.offset = start_offset
        self.line_no = start_line
        self.skip_malformed = skip_malformed
        self.report = DumpReport()
        self.compressed_size = self.path.stat().st_size
        self._chunks: _Chunks | None = None

    @property
    def compressed_pos(self) -> int:
        return self._chunks.compressed_pos if self._chunks else 0

    def _lines(self) -> Iterator[tuple[bytes, bool]]:
        """(line without its newline, whether a newline ended it); sets self.offset to the line's end."""
        chunks = self._chunks = _Chunks(self.path, self.kind)
        try:
            to_skip = self.start_offset
            rest = b""
            first = True
            for data in chunks:
                if to_skip:
                    if len(data) <= to_skip:
                        to_skip -= len(data)
                        last_byte = data[-1:]
                        continue
                    last_byte = data[to_skip - 1:to_skip]
                    data = data[to_skip:]
                    to_skip = 0
                    if last_byte != b"\n":
                        raise DumpError(f"{self.path}: start offset {self.start_offset} is not at the start of a line")
                if first and self.start_offset == 0:
                    first = False
                    if data.lstrip(b" \t\r\n\xef\xbb\xbf")[:1] not in (b"[", b"{", b""):
                        raise DumpError(f"{self.path}: decompressed content is not a Wikidata JSON dump")
                if rest:
                    data = rest + data
                lines = data.split(b"\n")
                rest = lines.pop()
                for line in lines:
                    self.offset += len(line) + 1
                    yield line, True
            if chunks.error is not None and not isinstance(chunks.error, EOFError):
                raise DumpError(f"{self.path}: cannot decompress ({chunks.error})", line=self.line_no + 1,
                                offset=self.offset)
            if to_skip:
                raise DumpError(f"{self.path}: start offset {self.start_offset} is past the end of the dump")
            if isinstance(chunks.error, EOFError):
                self.report.truncated = f"compressed stream ended early ({chunks.error})"
            if rest:
                self.offset += len(rest)
                yield rest, False
        finally:
            chunks.close()

    def __iter__(self) -> Iterator[Entity]:
        report = self.report
        lines = self._lines()
        pending: tuple[str, int, int, bool] | None = None  # a bad line waits: is it the last one?
        for raw, newline in lines:
            self.line_no += 1
            report.lines += 1
            line = raw.strip()
            if line.endswith(b","):
                line = line[:-1].rstrip()
            if not line or line == b"[":
                continue
            if line == b"]":  # the array closes: a bad line before it was not cut off, it is malformed
                if pending is not None:
                    self._malformed(*pending)
                    pending = None
                continue
            if pending is not None:
                self._malformed(*pending)
                pending = None
            try:
                result = entity_from_json(line)
            except msgspec.DecodeError as exc:
                start = self.offset - len(raw) - (1 if newline else 0)
                pending = (str(exc), self.line_no, start, newline)
                continue
            if isinstance(result, Entity):
                report.items += 1
                yield result
            elif result == "property":
                report.properties += 1
            elif result == "lexeme":
                report.lexemes += 1
            else:
                report.other += 1
        if pending is not None:  # the last line of the stream: a cut-off download, reported, not fatal
            error, line_no, offset, newline = pending
            report.truncated = (f"last line {line_no} (byte offset {offset}) is incomplete: {error}"
                                + ("" if newline else "; no final newline"))

    def _malformed(self, error: str, line_no: int, offset: int, newline: bool) -> None:
        if not self.skip_malformed:
            raise DumpError(f"{self.path}: malformed entity line: {error}", line=line_no, offset=offset)
        self.report.malformed_count += 1
        if len(self.report.malformed) < MAX_MALFORMED_RECORDED:
            self.report.malformed.append({"line": line_no, "offset": offset, "error": error})


def read_dump(path: str | os.PathLike, *, start_offset: int = 0, start_line: int = 0,
              skip_malformed: bool = False) -> DumpReader:
    """Stream the items of a Wikidata JSON dump (see the module docstring). Iterate the returned reader."""
    return DumpReader(path, start_offset=start_offset, start_line=start_line, skip_malformed=skip_malformed)


def entity_to_json(entity: dict[str, Any]) -> str:
    """One dump line for a hand-written entity dict (fixtures, benchmarks)."""
    return msgspec.json.encode(entity).decode()
