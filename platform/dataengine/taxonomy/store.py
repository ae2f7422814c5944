"""Writing entities into Node/Edge: PostgreSQL COPY into staging tables, then one merge per batch.

Each batch and its ingest run's resume point are committed in one transaction (``DatabaseSink``), so a
crash or a malformed line leaves the tables at a batch boundary that the run's ``offset`` names. SQLite
(the embedded default) gets the same semantics through plain upserts.
"""
from __future__ import annotations

import json

from django.db import connection, transaction
from django.utils import timezone

from dataengine.taxonomy.models import Edge, EdgeKind, IngestRun, Node
from ontology.entities import Entity
from ontology.ingest import Checkpoint

NODE_TABLE, EDGE_TABLE = Node._meta.db_table, Edge._meta.db_table

_PG_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS taxonomy_stage_node
    (id text, source text, label text, aliases jsonb, description text, sitelinks integer);
CREATE TEMP TABLE IF NOT EXISTS taxonomy_stage_edge (child text, parent text, kind text);
TRUNCATE taxonomy_stage_node, taxonomy_stage_edge;
"""
_PG_MERGE = f"""
INSERT INTO {NODE_TABLE} (id, source, label, aliases, description, sitelinks)
SELECT DISTINCT ON (id) id, source, label, aliases, description, sitelinks FROM taxonomy_stage_node
ON CONFLICT (id) DO UPDATE SET source = EXCLUDED.source, label = EXCLUDED.label, aliases = EXCLUDED.aliases,
    description = EXCLUDED.description, sitelinks = EXCLUDED.sitelinks;
DELETE FROM {EDGE_TABLE} e USING taxonomy_stage_node s WHERE e.child = s.id;
INSERT INTO {EDGE_TABLE} (child, parent, kind) SELECT DISTINCT child, parent, kind FROM taxonomy_stage_edge
ON CONFLICT DO NOTHING;
"""


def _edges(entity: Entity):
    for parent in entity.subclass_of:
        yield entity.id, parent, EdgeKind.SUBCLASS_OF.value
    for parent in entity.instance_of:
        yield entity.id, parent, EdgeKind.INSTANCE_OF.value


def write_entities(entities: list[Entity], source: str) -> None:
    """Upsert nodes and replace their outgoing edges. Precondition: inside a transaction."""
    if not entities:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_PG_STAGE)
            with cursor.cursor.copy("COPY taxonomy_stage_node FROM STDIN") as copy:
                for e in entities:
                    copy.write_row((e.id, source, e.label, json.dumps(e.aliases, ensure_ascii=False),
                                    e.description, e.sitelinks))
            with cursor.cursor.copy("COPY taxonomy_stage_edge FROM STDIN") as copy:
                for e in entities:
                    for row in _edges(e):
                        copy.write_row(row)
            cursor.execute(_PG_MERGE)
        return
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {NODE_TABLE} (id, source, label, aliases, description, sitelinks) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET source = excluded.source, label = excluded.label, "
            "aliases = excluded.aliases, description = excluded.description, sitelinks = excluded.sitelinks",
            [(e.id, source, e.label, json.dumps(e.aliases, ensure_ascii=False), e.description, e.sitelinks)
             for e in entities])
        ids = [e.id for e in entities]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            cursor.execute(f"DELETE FROM {EDGE_TABLE} WHERE child IN ({', '.join(['%s'] * len(chunk))})", chunk)
        cursor.executemany(f"INSERT OR IGNORE INTO {EDGE_TABLE} (child, parent, kind) VALUES (%s, %s, %s)",
                           [row for e in entities for row in _edges(e)])


class DatabaseSink:
    """An ontology.ingest sink: each batch and the run's checkpoint in one transaction."""

    def __init__(self, run: IngestRun):
        self.run = run

    def write_batch(self, entities: list[Entity], checkpoint: Checkpoint) -> None:
        with transaction.atomic():
            write_entities(entities, self.run.source)
            IngestRun.objects.filter(pk=self.run.pk).update(
                offset=checkpoint.offset, lines=checkpoint.line, entities=checkpoint.entities, updated_at=timezone.now())
        self.run.offset, self.run.lines, self.run.entities = checkpoint.offset, checkpoint.line, checkpoint.entities
