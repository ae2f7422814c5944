"""Tuned reads: the in-memory taxonomy snapshot, the lexicon, node lookups and the embedding cache.

The snapshot (ontology.taxonomy.Taxonomy) is loaded from the edge table with two single-column COPYs
and kept per process; it is rebuilt when an ingest run has written since (its version is the newest
IngestRun.updated_at and the number of runs: one indexed query per use).
"""
from __future__ import annotations

import threading

import numpy as np
from django.db import connection
from django.db.models import Count, Max

from dataengine.errors import NotFound
from dataengine.taxonomy.models import Edge, IngestRun, Node, NodeEmbedding, OntologySource
from ontology import wordnet
from ontology.entities import UnknownNode
from ontology.phrases import Lexicon, NodeText
from ontology.taxonomy import Taxonomy

_lock = threading.Lock()
_cache: dict[str, tuple[object, object]] = {}


def taxonomy_version() -> tuple:
    stats = IngestRun.objects.aggregate(n=Count("id"), last=Max("updated_at"))
    return stats["n"], stats["last"]


def invalidate() -> None:
    with _lock:
        _cache.clear()


def _column(sql: str) -> np.ndarray:
    """One text column as a byte-string array (COPY on PostgreSQL)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT") as copy:
                data = b"".join(bytes(block) for block in copy)
        values = data.split(b"\n")[:-1]
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            values = [row[0].encode() for row in cursor.fetchall()]
    return np.array(values, dtype="S") if values else np.empty(0, dtype="S1")


def load_taxonomy() -> Taxonomy:
    """A fresh snapshot of every node and edge (subclass and instance edges alike)."""
    edges = Edge._meta.db_table
    return Taxonomy.from_id_arrays(_column(f"SELECT id FROM {Node._meta.db_table}"),
                                   _column(f"SELECT child FROM {edges} ORDER BY id"),
                                   _column(f"SELECT parent FROM {edges} ORDER BY id"))


def _cached(name: str, build):
    version = taxonomy_version()
    with _lock:
        hit = _cache.get(name)
        if hit is not None and hit[0] == version:
            return hit[1]
    value = build()
    with _lock:
        _cache[name] = (version, value)
    return value


def current_taxonomy() -> Taxonomy:
    return _cached("taxonomy", load_taxonomy)


def _wordnet_senses() -> dict[str, list[str]]:
    try:
        return wordnet.read_noun_index(wordnet.find_folder())
    except wordnet.WordNetError:
        return {}


def current_lexicon() -> Lexicon:
    """Every labelled node's names (in memory: fine for WordNet; Wikidata-scale lookups belong in SQL)."""
    def build():
        nodes = (NodeText(n["id"], n["label"], tuple(n["aliases"] or ()), n["description"], n["sitelinks"])
                 for n in Node.objects.exclude(label=None).values("id", "label", "aliases", "description", "sitelinks")
                 .iterator(chunk_size=5000))
        has_wordnet = Node.objects.filter(source=OntologySource.WORDNET).exists()
        return Lexicon(nodes, senses=_wordnet_senses() if has_wordnet else None)

    return _cached("lexicon", build)


def current_senses() -> dict[str, list[str]]:
    """WordNet lemma → synset ids in sense order, from the installed files (empty when absent)."""
    return _cached("senses", _wordnet_senses)


def get_node(node_id: str) -> Node:
    node = Node.objects.filter(pk=node_id).first()
    if node is None:
        raise NotFound(f"ontology node {node_id!r} not found")
    return node


def check_in_taxonomy(taxonomy: Taxonomy, node_ids) -> None:
    missing = [n for n in node_ids if n not in taxonomy]
    if missing:
        raise NotFound(f"unknown ontology node(s): {', '.join(map(str, missing))}", nodes=missing)


def labels_of(node_ids) -> dict[str, str | None]:
    ids = list(node_ids)
    found = dict(Node.objects.filter(pk__in=ids).values_list("id", "label"))
    return {i: found.get(i) for i in ids}


def run_query(taxonomy: Taxonomy, method: str, node_id: str, **kwargs):
    try:
        return getattr(taxonomy, method)(node_id, **kwargs)
    except UnknownNode as exc:
        raise NotFound(str(exc)) from None


class DatabaseEmbeddingCache:
    """Node embeddings in NodeEmbedding (float32 bytes), computed once per node and model."""

    def get_many(self, ids, model):
        rows = NodeEmbedding.objects.filter(model=model, node_id__in=list(ids)).values_list("node_id", "vector")
        return {node: np.frombuffer(bytes(vector), dtype=np.float32) for node, vector in rows}

    def put_many(self, vectors, model):
        NodeEmbedding.objects.bulk_create(
            [NodeEmbedding(node_id=node, model=model, vector=np.asarray(v, dtype=np.float32).tobytes())
             for node, v in vectors.items()], ignore_conflicts=True)
