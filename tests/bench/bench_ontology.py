"""Benchmark: Wikidata dump ingest against bare decompression, and taxonomy query latency on 1M nodes.

    python -m tests.bench.bench_ontology            # 20k-item dumps (~430 MB of JSON) and a 1M-node graph
    python -m tests.bench.bench_ontology --quick    # 2k items and a 100k-node graph (smoke)

Ingest: a synthetic dump in the real format (tests/ontology/dumpgen.py: entities sized like real ones,
labels in ~30 languages, ~15 properties with references, sitelinks; properties and lexemes mixed in) is
written as .json.gz and .json.bz2. For each: the bare decompression time (``zcat``/``bzcat`` to /dev/null),
the reader alone (``ontology.wikidata.read_dump``), and the full ingest into a fresh PostgreSQL database
(``dataengine.taxonomy.services.run_dump_ingest``: COPY in batches of 2,000 with a committed checkpoint each).
Each timing is the best of ``--repeat`` runs, interleaved, because this machine is shared.
``ingest_over_decompress_ratio`` = bare decompression time / full ingest time on the .json.gz file
(the harder case: bzcat is ~10× slower than zcat). Memory: peak RSS of a reader process on a dump and on one
4× larger.

Taxonomy: a synthetic DAG of ``--nodes`` nodes made like this: node i > 0 takes a parent uniformly from
0..i-1 (a random recursive tree: depth ~ ln N), 10% take a second parent, 5% of edges go to one of 100 hub
nodes instead (Wikidata-like fan-outs of thousands), and 1,000 extra edges from a node to one of its
descendants make cycles. Queries: ancestors, descendants (max_depth 2, limit 1000), siblings, cousins,
uncles, lowest common ancestors, path to root, on random nodes; p50/p95 per kind and over all.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.bench.harness import BenchDatabase, cpu_calibration_ms, django_env, migrate, percentile
from tests.bench.report import write_report
from tests.ontology.dumpgen import write_dump

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- ingest

def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _bare_decompress(path: Path) -> float:
    tool = "zcat" if path.suffix == ".gz" else "bzcat"
    return _time(lambda: subprocess.run([tool, str(path)], stdout=subprocess.DEVNULL, check=True))


def _reader_only(path: Path) -> float:
    from ontology.wikidata import read_dump

    return _time(lambda: sum(1 for _ in read_dump(path)))


def _peak_rss_mb(path: Path) -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the (large) parent process.
    code = ("import sys; from ontology.wikidata import read_dump; sum(1 for _ in read_dump(sys.argv[1])); "
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": f"{ROOT}"})
    return int(out.stdout.strip()) / 1024


def _setup_django(database_url: str, data_dir: str) -> None:
    env = django_env(database_url, data_dir)
    migrate(env)
    os.environ.update(env)
    sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
    import django

    django.setup()


def _db_ingest(path: Path) -> tuple[float, int]:
    from dataengine.taxonomy import services
    from dataengine.taxonomy.models import Edge, IngestRun, Node
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Node._meta.db_table}, {Edge._meta.db_table}")
    run = IngestRun.objects.create(source="wikidata", path=str(path))
    started = time.perf_counter()
    run = services.run_dump_ingest(run.pk)
    seconds = time.perf_counter() - started
    if run.state != "done":
        raise RuntimeError(f"ingest failed: {run.error}")
    return seconds, run.entities


def bench_ingest(items: int, repeat: int, work: Path, formats=("gz", "bz2")) -> tuple[dict, list[dict], list[str]]:
    figures, rows, notes = {}, [], []
    dumps = {}
    for kind in formats:
        path = work / f"dump.json.{kind}"
        started = time.perf_counter()
        write_dump(path, items, compress=kind)
        dumps[kind] = path
        notes.append(f"{path.name}: {items:,} items, {path.stat().st_size / 1e6:.1f} MB compressed, written in "
                     f"{time.perf_counter() - started:.0f} s")
    with BenchDatabase(f"dataengine_bench_ontology_{os.getpid()}") as database:
        _setup_django(database.url, str(work / "data"))
        for kind, path in dumps.items():
            bare, reader, ingest = [], [], []
            entities = items
            for _ in range(repeat):
                bare.append(_bare_decompress(path))
                reader.append(_reader_only(path))
                seconds, entities = _db_ingest(path)
                ingest.append(seconds)
            b, r, i = min(bare), min(reader), min(ingest)
            rows.append({"file": path.name, "MB": path.stat().st_size / 1e6, "items": entities,
                         "bare_decompress_s": b, "reader_s": r, "ingest_s": i,
                         "bare_items_per_s": entities / b, "reader_items_per_s": entities / r,
                         "ingest_items_per_s": entities / i, "ingest/bare": b / i, "reader/bare": b / r})
            figures[f"dump_ingest_entities_per_s_{kind}"] = round(entities / i, 1)
            figures[f"dump_reader_entities_per_s_{kind}"] = round(entities / r, 1)
            figures[f"bare_decompress_entities_per_s_{kind}"] = round(entities / b, 1)
            figures[f"ingest_over_decompress_ratio_{kind}"] = round(b / i, 3)
    first = formats[0]
    figures["dump_ingest_entities_per_s"] = figures[f"dump_ingest_entities_per_s_{first}"]
    figures["ingest_over_decompress_ratio"] = figures[f"ingest_over_decompress_ratio_{first}"]
    # Memory: the same reader on a dump 4x larger.
    small, large = work / "small.json.gz", work / "large.json.gz"
    write_dump(small, max(items // 4, 500), compress="gz", seed=1)
    write_dump(large, max(items, 2000), compress="gz", seed=1)
    rss_small, rss_large = _peak_rss_mb(small), _peak_rss_mb(large)
    figures.update(reader_peak_rss_mb_small=round(rss_small, 1), reader_peak_rss_mb_4x=round(rss_large, 1),
                   reader_rss_growth_4x=round(rss_large / rss_small, 3))
    notes.append(f"peak RSS of a reader process: {rss_small:.0f} MB on {small.stat().st_size / 1e6:.1f} MB, "
                 f"{rss_large:.0f} MB on the 4x file (decompressed chunks in flight are bounded: 32 x 1 MB)")
    return figures, rows, notes


# ---------------------------------------------------------------- taxonomy

def synthetic_graph(n: int, seed: int = 0):
    """(ids, child, parent) of the graph described in the module docstring."""
    rng = np.random.default_rng(seed)
    child = np.arange(1, n, dtype=np.int64)
    parent = (rng.random(n - 1) * child).astype(np.int64)
    hub = rng.random(n - 1) < 0.05
    parent[hub] = rng.integers(0, 100, hub.sum())
    parent = np.minimum(parent, child - 1)
    second = rng.random(n - 1) < 0.10
    extra_child = child[second]
    extra_parent = (rng.random(second.sum()) * extra_child).astype(np.int64)
    # Cycles: a node takes a later node (likely its descendant) as an extra parent.
    cyc = rng.integers(1, n // 2, 1000)
    cyc_parent = np.minimum(cyc * 2 + rng.integers(0, 3, 1000), n - 1)
    children = np.concatenate([child, extra_child, cyc])
    parents = np.concatenate([parent, extra_parent, cyc_parent])
    ids = np.char.add(b"Q", np.arange(n).astype("S"))
    return ids, children, parents


def bench_taxonomy(n: int, queries_per_kind: int) -> tuple[dict, list[dict], list[str]]:
    from ontology.taxonomy import Taxonomy

    ids, children, parents = synthetic_graph(n)
    started = time.perf_counter()
    taxonomy = Taxonomy.from_indexed(ids, children, parents)
    build = time.perf_counter() - started
    size = sum(a.nbytes for a in (taxonomy._ids, taxonomy._up_ptr, taxonomy._up, taxonomy._down_ptr, taxonomy._down))
    rng = np.random.default_rng(1)
    sample = [ids[i].decode() for i in rng.integers(0, n, queries_per_kind)]
    pairs = [(ids[a].decode(), ids[b].decode()) for a, b in rng.integers(0, n, (queries_per_kind, 2))]
    kinds = {
        "ancestors": lambda x: taxonomy.ancestors(x),
        "descendants_d2_l1000": lambda x: taxonomy.descendants(x, max_depth=2, limit=1000),
        "siblings": lambda x: taxonomy.siblings(x),
        "cousins": lambda x: taxonomy.cousins(x),
        "uncles": lambda x: taxonomy.uncles(x),
        "path_to_root": lambda x: taxonomy.path_to_root(x),
    }
    rows, everything = [], []
    for name, query in kinds.items():
        times = []
        for node in sample:
            t = time.perf_counter()
            query(node)
            times.append((time.perf_counter() - t) * 1000)
        rows.append({"query": name, "n": len(times), "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95),
                     "max_ms": max(times)})
        everything += times
    times = []
    for a, b in pairs:
        t = time.perf_counter()
        taxonomy.lowest_common_ancestors(a, b)
        times.append((time.perf_counter() - t) * 1000)
    rows.append({"query": "lowest_common_ancestors", "n": len(times), "p50_ms": percentile(times, 50),
                 "p95_ms": percentile(times, 95), "max_ms": max(times)})
    everything += times
    suffix = "1M" if n >= 1_000_000 else f"{n // 1000}k"
    figures = {f"taxonomy_query_p95_ms_{suffix}": round(percentile(everything, 95), 3),
               f"taxonomy_query_p50_ms_{suffix}": round(percentile(everything, 50), 3),
               "taxonomy_nodes": len(taxonomy), "taxonomy_edges": taxonomy.edge_count,
               "taxonomy_snapshot_build_s": round(build, 2), "taxonomy_snapshot_mb": round(size / 1e6, 1)}
    for row in rows:
        figures[f"taxonomy_{row['query']}_p95_ms_{suffix}"] = round(row["p95_ms"], 3)
    notes = [f"graph: {len(taxonomy):,} nodes, {taxonomy.edge_count:,} edges; snapshot {size / 1e6:.0f} MB of arrays, "
             f"built in {build:.1f} s from int-coded edges"]
    return figures, rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--nodes", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--formats", default="gz,bz2", help="dump compressions to ingest (gz first)")
    args, _ = parser.parse_known_args(argv)
    items = args.items or (2_000 if args.quick else 20_000)
    nodes = args.nodes or (100_000 if args.quick else 1_000_000)
    work = Path(tempfile.mkdtemp(prefix="bench-ontology-"))
    try:
        calibration = cpu_calibration_ms()
        tax_figures, tax_rows, tax_notes = bench_taxonomy(nodes, 300 if args.quick else 1000)
        ing_figures, ing_rows, ing_notes = bench_ingest(items, 1 if args.quick else args.repeat, work,
                                                        formats=tuple(args.formats.split(",")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = {**ing_figures, **tax_figures, "cpu_calibration_ms": round(calibration, 1),
               "ingest_goal_met": ing_figures["ingest_over_decompress_ratio"] >= 0.5,
               "load_average_1m": round(os.getloadavg()[0], 2)}
    notes = ing_notes + tax_notes + [
        "taxonomy queries run on an in-memory CSR snapshot (ontology.taxonomy), not in SQL",
        "this machine is shared: cpu_calibration_ms and load_average_1m say how busy it was"]
    write_report("ontology", figures, table_rows=ing_rows + tax_rows, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
