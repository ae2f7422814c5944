"""Batching entities into a store, resumably: the store commits each batch together with its resume point.

The library knows nothing about the database: a *sink* (the platform's PostgreSQL COPY writer, or a
list in tests) implements ``write_batch(entities, checkpoint)`` and must store the entities and the
checkpoint in one transaction, so that a crash leaves either the whole batch and its checkpoint or neither.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ontology.entities import Entity
from ontology.wikidata import DumpError, DumpReader, read_dump

DEFAULT_BATCH = 5000


@dataclass(frozen=True)
class Checkpoint:
    """Where a resumed read starts: byte ``offset`` in the decompressed stream and the ``line`` count so far."""

    offset: int
    line: int
    entities: int  # total items stored so far in this run


class EntitySink(Protocol):
    def write_batch(self, entities: list[Entity], checkpoint: Checkpoint) -> None:
        """Store ``entities`` and ``checkpoint`` atomically (both or neither)."""


@dataclass
class IngestResult:
    entities: int
    checkpoint: Checkpoint
    seconds: float
    report: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def rate(self) -> float:
        """Entities per second over this run (resumed runs count only what they read)."""
        return self.entities / self.seconds if self.seconds > 0 else 0.0


class ListSink:
    """Keeps everything in memory (tests, notebooks)."""

    def __init__(self):
        self.entities: list[Entity] = []
        self.checkpoints: list[Checkpoint] = []

    def write_batch(self, entities: list[Entity], checkpoint: Checkpoint) -> None:
        self.entities.extend(entities)
        self.checkpoints.append(checkpoint)


def _progress_bar(reader: DumpReader, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=reader.compressed_size, unit="B", unit_scale=True, desc=reader.path.name, mininterval=1.0,
                initial=0, leave=False)


def ingest_dump(path: str | Path, sink: EntitySink, *, resume: Checkpoint | None = None,
                batch_size: int = DEFAULT_BATCH, skip_malformed: bool = False, progress: bool = False,
                on_batch: Callable[[Checkpoint, float], None] | None = None) -> IngestResult:
    """Read a Wikidata dump into ``sink`` in batches; resumes after ``resume`` when given.

    On a malformed line (without ``skip_malformed``) the complete entities before it are written with a
    checkpoint at the bad line, and the DumpError is re-raised: progress is kept, nothing is half-written.
    ``on_batch(checkpoint, entities_per_second)`` is called after each committed batch.
    """
    resume = resume or Checkpoint(0, 0, 0)
    reader = read_dump(path, start_offset=resume.offset, start_line=resume.line, skip_malformed=skip_malformed)
    bar = _progress_bar(reader, progress)
    started = time.perf_counter()
    total = resume.entities
    batch: list[Entity] = []
    checkpoint = resume

    def flush(at: Checkpoint) -> None:
        nonlocal batch, checkpoint
        sink.write_batch(batch, at)
        checkpoint, batch = at, []
        rate = (at.entities - resume.entities) / max(time.perf_counter() - started, 1e-9)
        if bar is not None:
            bar.update(reader.compressed_pos - bar.n)
            bar.set_postfix(entities=at.entities, rate=f"{rate:,.0f}/s", refresh=False)
        if on_batch is not None:
            on_batch(at, rate)

    try:
        for entity in reader:
            batch.append(entity)
            total += 1
            if len(batch) >= batch_size:
                flush(Checkpoint(reader.offset, reader.line_no, total))
    except DumpError as exc:
        if batch and exc.offset is not None:
            # Resume at the bad line: the entities before it are complete.
            flush(Checkpoint(exc.offset, (exc.line or 1) - 1, total))
        raise
    finally:
        if bar is not None:
            bar.close()
    flush(Checkpoint(reader.offset, reader.line_no, total))
    return IngestResult(entities=total - resume.entities, checkpoint=checkpoint,
                        seconds=time.perf_counter() - started, report=reader.report.as_dict())


def ingest_entities(entities: Iterable[Entity], sink: EntitySink, *, batch_size: int = DEFAULT_BATCH) -> int:
    """Write any entity stream (e.g. WordNet) in batches; the checkpoint counts entities only."""
    batch: list[Entity] = []
    total = 0
    for entity in entities:
        batch.append(entity)
        total += 1
        if len(batch) >= batch_size:
            sink.write_batch(batch, Checkpoint(0, 0, total))
            batch = []
    sink.write_batch(batch, Checkpoint(0, 0, total))
    return total
