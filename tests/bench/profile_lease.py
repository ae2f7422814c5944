"""Where the time of one `POST /api/projects/{id}/tasks/next` goes, measured in-process (no HTTP, no gunicorn).

    python -m tests.bench.profile_lease [--tasks 1000000] [--requests 1000] [--cprofile 25]

Seeds a throw-away database like bench_lease, then drives Django's own WSGI handler (the full middleware stack,
DRF, token auth) with fresh annotators, one request at a time, and reports per request:
- wall time of each part: middleware + DRF dispatch, token auth, access_project (project + membership),
  held-lease check, lease UPDATE, the discarded `HumanTask.objects.get` after the lease, task detail
  (select_related get + `masks` query + serialization), JSON rendering;
- every SQL statement by kind: count per request and wall ms (Python → PostgreSQL → Python).
The parts are measured by wrapping the platform's functions *in this process only*; nothing in platform/ changes.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Timers:
    def __init__(self):
        self.seconds = defaultdict(float)
        self.cpu = defaultdict(float)
        self.calls = defaultdict(int)

    def clear(self) -> None:
        self.seconds.clear()
        self.cpu.clear()
        self.calls.clear()

    @contextmanager
    def part(self, name: str):
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start
            self.cpu[name] += time.thread_time() - cpu
            self.calls[name] += 1

    def wrap(self, owner, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)
        timers = self

        def wrapper(*args, **kwargs):
            with timers.part(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, wrapper)


SQL_KINDS = [
    ("token lookup (authtoken_token ⋈ auth_user)", r'FROM "?authtoken_token'),
    ("project", r'FROM "?accounts_project'),
    ("membership", r'FROM "?accounts_membership'),
    ("held-lease check", r'FROM "annotation_humantask" WHERE .*"holder_id"'),
    ("lease UPDATE … RETURNING", r"^\s*UPDATE annotation_humantask"),
    ("task detail (select_related)", r'FROM "annotation_humantask" INNER JOIN'),
    ("task re-read by pk", r'FROM "annotation_humantask" WHERE "annotation_humantask"."id" ='),
    ("lease + detail, one statement (prototype)", r"^\s*WITH (no_fsync|held) AS"),
    ("accepted masks (serializer)", r'FROM "annotation_mask" WHERE'),
    ("BEGIN / COMMIT / SAVEPOINT", r"^(BEGIN|COMMIT|SAVEPOINT|RELEASE|ROLLBACK)"),
]


def classify(sql: str) -> str:
    for name, pattern in SQL_KINDS:
        if re.search(pattern, sql, flags=re.S):
            return name
    return "other: " + sql[:80]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.profile_lease")
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--cprofile", type=int, default=0, help="also print the top N functions by own time")
    args = parser.parse_args(argv)

    from tests.bench import seed
    from tests.bench.harness import BenchDatabase, app_root, django_env, migrate

    with BenchDatabase(f"dataengine_bench_profile_{os.getpid()}") as db:
        env = django_env(db.url, tempfile.mkdtemp(prefix="bench-profile-"))
        migrate(env)
        schema = seed.Schema(db.url, env)
        world = seed.seed_project(db.url, schema, args.requests + 200)
        seed.seed_queue(db.url, schema, project_id=world["project_id"], media_id=world["media_id"], tasks=args.tasks)
        os.environ.update(env)
        for path in (app_root() / "platform", app_root()):
            if str(path) not in sys.path:
                sys.path.append(str(path))
        try:
            report = profile(world, args)
        finally:
            from django.db import connections

            connections.close_all()
    print(report)
    return 0


def profile(world: dict, args) -> str:
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.renderers import JSONRenderer

    from dataengine.annotation import services
    from dataengine.annotation.api import views

    timers = Timers()
    timers.wrap(TokenAuthentication, "authenticate", "token auth")
    timers.wrap(views, "access_project", "access_project (project + membership)")
    timers.wrap(services, "lease_next_task", "lease_next_task (total)")
    timers.wrap(services, "_lease_one", "lease UPDATE (_lease_one)")
    timers.wrap(views, "_task_response", "task detail + serialization (_task_response)")
    timers.wrap(JSONRenderer, "render", "JSON rendering")
    # A prototype in a scratch copy (BENCH_APP_ROOT) may add these; timed when present.
    from dataengine.accounts import services as account_services

    if hasattr(services, "lease_next_task_data"):
        timers.wrap(services, "lease_next_task_data", "lease + detail in one statement (lease_next_task_data)")
    if hasattr(account_services, "access_project_id"):
        timers.wrap(account_services, "access_project_id", "access_project_id (membership)")
    queries: dict[str, list[float]] = defaultdict(list)

    def execute_wrapper(execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries[classify(sql)].append(time.perf_counter() - start)

    handler = WSGIHandler()
    path = f"/api/projects/{world['project_id']}/tasks/next"
    body = b'{"kind": "mask_verification"}'
    users = iter(world["users"])

    def request() -> int:
        user_id, token = next(users)
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
            "HTTP_AUTHORIZATION": f"Token {token}", "HTTP_HOST": "127.0.0.1", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "REMOTE_ADDR": "127.0.0.1",
        }
        statuses = []
        chunks = handler(environ, lambda status, headers, exc_info=None: statuses.append(status))
        b"".join(chunks)
        return int(statuses[0].split()[0])

    for _ in range(100):  # warm-up: imports, URL resolver, connection
        assert request() == 200
    timers.clear()
    queries.clear()
    import psutil

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = psutil.Process(cursor.fetchone()[0])
    backend_cpu = sum(backend.cpu_times()[:2])
    profiler = cProfile.Profile(time.thread_time) if args.cprofile else None  # CPU, not waiting
    started = time.perf_counter()
    cpu_started = time.process_time()
    with connection.execute_wrapper(execute_wrapper):
        if profiler:
            profiler.enable()
        for _ in range(args.requests):
            status = request()
            if status != 200:
                raise RuntimeError(f"lease answered {status}")
        if profiler:
            profiler.disable()
    wall = (time.perf_counter() - started) / args.requests * 1000
    cpu = (time.process_time() - cpu_started) / args.requests * 1000
    pg_cpu = (sum(backend.cpu_times()[:2]) - backend_cpu) / args.requests * 1000
    n = args.requests

    def parts_of(seconds: dict, whole: float) -> list[tuple[str, float]]:
        ms = {name: value / n * 1000 for name, value in seconds.items()}
        lease_total = ms.get("lease_next_task (total)", 0.0)
        lease_sql = ms.get("lease UPDATE (_lease_one)", 0.0)
        parts = [
            ("token auth (DRF TokenAuthentication)", ms.get("token auth", 0.0)),
            ("access_project (project + membership)", ms.get("access_project (project + membership)", 0.0)),
            ("held-lease check + task re-read by pk (lease_next_task less _lease_one)", lease_total - lease_sql),
            ("lease UPDATE (_lease_one: BEGIN, UPDATE … RETURNING, COMMIT)", lease_sql),
            ("task detail: select_related get + masks query + TaskSerializer", ms.get(
                "task detail + serialization (_task_response)", 0.0)),
            ("JSON rendering", ms.get("JSON rendering", 0.0)),
        ]
        parts += [(name, ms[name]) for name in ("access_project_id (membership)",
                                                 "lease + detail in one statement (lease_next_task_data)")
                  if name in ms]
        parts.append(("rest: WSGI handler, middleware, DRF dispatch, request parsing, response",
                      whole - sum(v for _, v in parts)))
        return parts

    wall_parts, cpu_parts = parts_of(timers.seconds, wall), parts_of(timers.cpu, cpu)
    lines = [f"in-process lease requests at {args.tasks:,} queued tasks: {n} requests, "
             f"{wall:.2f} ms wall, {cpu:.2f} ms CPU in Django and {pg_cpu:.2f} ms CPU in its PostgreSQL backend "
             f"per request; "
             f"{sum(len(v) for v in queries.values()) / n:.1f} SQL statements per request (BEGIN/COMMIT not "
             f"counted: psycopg sends them itself)", "",
             f"{'part':<76} {'wall ms':>8} {'CPU ms':>8}"]
    lines += [f"{name:<76} {w:>8.3f} {c:>8.3f}" for (name, w), (_, c) in zip(wall_parts, cpu_parts)]
    lines.append(f"{'total':<76} {wall:>8.3f} {cpu:>8.3f}")
    lines += ["", f"{'SQL statement':<72} {'per req':>7} {'ms each':>8} {'ms/req':>7}"]
    for name, times in sorted(queries.items(), key=lambda kv: -sum(kv[1])):
        lines.append(f"{name:<72} {len(times) / n:>7.2f} {sum(times) / len(times) * 1000:>8.3f} "
                     f"{sum(times) / n * 1000:>7.3f}")
    total_sql = sum(sum(t) for t in queries.values()) / n * 1000
    lines.append(f"{'all SQL (wall, incl. the driver)':<72} {'':>7} {'':>8} {total_sql:>7.3f}")
    lines.append("(SQL wall = Django's cursor wrapper → psycopg → PostgreSQL → back, as the view sees it)")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.cprofile)
        lines += ["", out.getvalue()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
