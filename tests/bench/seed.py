"""Seed a migrated database with SQL (generate_series), not the ORM: one project, one image, N queued MV tasks.

The database has no column defaults (Django fills them in Python), so every column the seed does not set itself
gets the value the model would write (asked from the models by tests.bench.schema_defaults, so a column added
tomorrow is covered), and a NOT NULL column with no model default stops the seed with its name. Every foreign key
points at a real row: when the role may skip the per-row FK triggers (superuser; ~35 s saved at 1M) it does, and
then checks every FK with one anti-join each.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parents[2]
KIND = "mask_verification"
MASKS_PER_DATAPOINT = 4  # MV tasks: one per proposed mask; a datapoint (image x phrase) has several
WIDTH, HEIGHT = 640, 480
ANNOTATOR_PREFIX = "bench-annotator-"


def sample_rle() -> tuple[dict, list[float], int]:
    """A real COCO compressed RLE of an ellipse and a disc on a 640x480 image (~1 KB of counts, as in production).

    Made here with pycocotools when it imports; otherwise a fixed stand-in of the same size.
    """
    try:
        import numpy as np
        from pycocotools import mask as mask_utils

        yy, xx = np.mgrid[:HEIGHT, :WIDTH]
        mask = ((yy - 240) ** 2 / 120 ** 2 + (xx - 300) ** 2 / 180 ** 2) < 1
        mask |= ((yy - 100) ** 2 + (xx - 500) ** 2) < 40 ** 2
        encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        rle = {"size": [HEIGHT, WIDTH], "counts": encoded["counts"].decode("ascii")}
        x, y, w, h = (float(v) for v in mask_utils.toBbox(encoded))
        return rle, [x, y, w, h], int(mask.sum())
    except ImportError:  # pragma: no cover - pycocotools is a platform dependency
        return {"size": [HEIGHT, WIDTH], "counts": "0" * 950}, [121.0, 61.0, 419.0, 299.0], 72838


class Schema:
    """The real columns of the tables (from PostgreSQL) and what Django writes into those the seed leaves out."""

    def __init__(self, url: str, env: dict[str, str]):
        out = subprocess.run([sys.executable, "-m", "tests.bench.schema_defaults"], cwd=ROOT, env=env,
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"tests.bench.schema_defaults failed:\n{out.stderr[-4000:]}")
        self.defaults: dict[str, dict] = json.loads(out.stdout)
        self.columns: dict[str, list[tuple[str, bool, bool]]] = {}
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT table_name, column_name, is_nullable = 'YES', column_default IS NOT NULL OR is_identity = 'YES'"
                " FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
            ).fetchall()
            for table, column, nullable, db_default in rows:
                self.columns.setdefault(table, []).append((column, nullable, db_default))
            self._literal = lambda value: sql.Literal(value).as_string(None)

    def insert_select(self, table: str, values: dict[str, str], source: str) -> str:
        """``INSERT INTO table (...) SELECT ... <source>``: ``values`` maps columns to SQL expressions (named
        %(placeholders)s allowed); every other column gets the model's default, or NULL / the DB default."""
        if table not in self.columns:
            raise RuntimeError(f"table {table} does not exist: did the models change?")
        unknown = set(values) - {name for name, _, _ in self.columns[table]}
        if unknown:
            raise RuntimeError(f"{table} has no column(s) {sorted(unknown)}: did the models change?")
        model = self.defaults.get(table, {})
        names, expressions = [], []
        for name, nullable, db_default in self.columns[table]:
            if name in values:
                expression = values[name]
            else:
                default = model.get(name, {}).get("default", "__missing__")
                if default == "__now__":
                    expression = "now()"
                elif default == "__missing__":
                    if nullable or db_default:
                        continue
                    raise RuntimeError(f"{table}.{name} is NOT NULL and its model gives no default: the bench seed "
                                       f"(tests/bench/seed.py) must set it")
                elif default is None:
                    continue
                else:
                    literal = self._literal(Jsonb(default) if isinstance(default, (dict, list)) else default)
                    expression = literal.replace("%", "%%")
            names.append(name)
            expressions.append(expression)
        return f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(expressions)} {source}"


def may_skip_fk_triggers(url: str) -> bool:
    """Whether this role may set session_replication_role (superuser): per-row FK triggers can then be skipped."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute("SET session_replication_role = replica")
            return True
        except psycopg.errors.InsufficientPrivilege:
            return False


def check_foreign_keys(conn: psycopg.Connection, tables) -> None:
    """Every FK of ``tables`` points at a row (one anti-join per FK, read from the catalog)."""
    fks = conn.execute(
        "SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, af.attname"
        " FROM pg_constraint c"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
        " JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = c.confkey[1]"
        " WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY(%s)", [list(tables)]).fetchall()
    for child, column, parent, parent_column in fks:
        dangling = conn.execute(
            f"SELECT count(*) FROM {child} c WHERE c.{column} IS NOT NULL"
            f" AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{parent_column} = c.{column})").fetchone()[0]
        if dangling:
            raise RuntimeError(f"seed bug: {dangling} rows of {child}.{column} point at no {parent} row")


def _run_in_transaction(url: str, statements: list[tuple[str, dict]], skip_fk_triggers: bool) -> None:
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("SET LOCAL synchronous_commit = off")
        if skip_fk_triggers:
            conn.execute("SET LOCAL session_replication_role = replica")
        for statement, params in statements:
            conn.execute(statement, params)


def seed_project(url: str, schema: Schema, annotators: int) -> dict:
    """The project, its one media item and ``annotators`` users with tokens and annotator memberships.

    Returns {"project_id", "media_id", "users": [(user_id, token_key), ...]} (users in id order).
    """
    salt = uuid.uuid4().hex
    skip = may_skip_fk_triggers(url)
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("SET LOCAL synchronous_commit = off")
        if skip:
            conn.execute("SET LOCAL session_replication_role = replica")
        project_id = conn.execute(
            schema.insert_select("accounts_project", {"name": "%(name)s", "description": "''"}, "") + " RETURNING id",
            {"name": "bench " + salt[:8]}).fetchone()[0]
        media_id = conn.execute(schema.insert_select("media_mediaitem", {
            "kind": "'image'", "name": "'bench.png'", "storage_name": "'media/bench.png'", "sha256": "%(sha)s",
            "size_bytes": "123456", "width": str(WIDTH), "height": str(HEIGHT), "project_id": "%(project)s",
        }, "") + " RETURNING id", {"sha": salt + salt, "project": project_id}).fetchone()[0]
        conn.execute(schema.insert_select("auth_user", {
            "password": "'!bench-unusable-password'", "username": "%(prefix)s || i", "is_superuser": "false",
            "is_staff": "false", "is_active": "true",
        }, "FROM generate_series(1, %(n)s) AS i"), {"prefix": ANNOTATOR_PREFIX, "n": annotators})
        # 40 hex characters like DRF's own keys (binascii.hexlify(os.urandom(20))).
        conn.execute(schema.insert_select("authtoken_token", {
            "key": "substr(md5(%(salt)s || id::text) || md5(id::text || %(salt)s), 1, 40)", "user_id": "id",
        }, "FROM auth_user WHERE username LIKE %(like)s"), {"salt": salt, "like": ANNOTATOR_PREFIX + "%"})
        conn.execute(schema.insert_select("accounts_membership", {
            "role": "'annotator'", "user_id": "id", "project_id": "%(project)s",
        }, "FROM auth_user WHERE username LIKE %(like)s"), {"project": project_id, "like": ANNOTATOR_PREFIX + "%"})
        users = conn.execute(
            "SELECT u.id, t.key FROM auth_user u JOIN authtoken_token t ON t.user_id = u.id"
            " WHERE u.username LIKE %s ORDER BY u.id", [ANNOTATOR_PREFIX + "%"]).fetchall()
    if skip:
        with psycopg.connect(url, autocommit=True) as conn:
            check_foreign_keys(conn, ["accounts_project", "media_mediaitem", "auth_user", "authtoken_token",
                                      "accounts_membership"])
    return {"project_id": project_id, "media_id": media_id, "users": users}


def seed_queue(url: str, schema: Schema, *, project_id: int, media_id: int, tasks: int) -> float:
    """Replace the queue with ``tasks`` queued MV tasks (one proposed mask each); VACUUM ANALYZE. Returns seconds.

    Concepts and datapoints are emptied first (TRUNCATE … RESTART IDENTITY), so this also resets leases: no
    annotator holds anything afterwards. Masks and tasks are written by two connections at once (2 cores).
    """
    started = time.perf_counter()
    rle, bbox, area = sample_rle()
    params = {"n": tasks, "dps": -(-tasks // MASKS_PER_DATAPOINT), "per": MASKS_PER_DATAPOINT, "media": media_id,
              "project": project_id, "rle": Jsonb(rle), "bbox": Jsonb(bbox), "area": area, "kind": KIND}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE annotation_humantask, annotation_mask, concepts_datapoint, concepts_concept"
                     " RESTART IDENTITY CASCADE")
    parents = [
        (schema.insert_select("concepts_concept", {"id": "i", "phrase": "'bench concept ' || i"},
                              "FROM generate_series(1, %(dps)s) AS i"), params),
        (schema.insert_select("concepts_datapoint", {
            "id": "i", "source": "'ontology'", "state": "'mask_verification'", "revision": "1", "concept_id": "i",
            "media_id": "%(media)s", "project_id": "%(project)s",
        }, "FROM generate_series(1, %(dps)s) AS i"), params),
        (schema.insert_select("annotation_mask", {
            "id": "i", "rle": "%(rle)s", "bbox": "%(bbox)s", "area": "%(area)s", "source": "'model'",
            "state": "'proposed'", "score": "0.5 + (i %% 50) / 100.0", "datapoint_id": "(i - 1) / %(per)s + 1",
        }, "FROM generate_series(1, %(n)s) AS i"), params),
    ]
    queue = [
        (schema.insert_select("annotation_humantask", {
            "id": "i", "kind": "%(kind)s", "state": "'queued'", "priority": "0",
            "datapoint_id": "(i - 1) / %(per)s + 1",
            "project_id": "%(project)s", "mask_id": "i",
        }, "FROM generate_series(1, %(n)s) AS i"), params),
    ]
    if may_skip_fk_triggers(url):
        with ThreadPoolExecutor(2) as pool:
            for job in [pool.submit(_run_in_transaction, url, parents, True),
                        pool.submit(_run_in_transaction, url, queue, True)]:
                job.result()
        with psycopg.connect(url, autocommit=True) as conn:
            check_foreign_keys(conn, ["concepts_concept", "concepts_datapoint", "annotation_mask",
                                      "annotation_humantask"])
    else:  # FK triggers on: parents must be committed before the tasks that point at them
        _run_in_transaction(url, parents, False)
        _run_in_transaction(url, queue, False)
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("concepts_concept", "concepts_datapoint", "annotation_mask", "annotation_humantask"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        for table in ("auth_user", "authtoken_token", "accounts_membership", "accounts_project", "media_mediaitem",
                      "concepts_concept", "concepts_datapoint", "annotation_mask", "annotation_humantask"):
            conn.execute(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started
