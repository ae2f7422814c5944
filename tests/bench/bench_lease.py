"""Benchmark: lease the next human task over HTTP (`POST /api/projects/{id}/tasks/next`) at 100k and 1M queued tasks.

    python -m tests.bench.bench_lease                 # full: 100k and 1M queued tasks, 5-9 minutes
    python -m tests.bench.bench_lease --quick         # smoke: 10k tasks, a few seconds per phase, < 1 minute
    python -m tests.bench.bench_lease --sizes 1000000 --workers 3 --nice -15

What it does: a fresh PostgreSQL database (dropped at the end) migrated with `manage.py migrate` and seeded with
SQL (tests.bench.seed); gunicorn (sync workers, DEBUG=0) on 127.0.0.1; then, per queue size:

- warm-up: a few seconds of saturated leasing, so every worker has imported, connected and filled its caches;
- 1 client: one annotator after another, back to back, on one connection;
- N annotators (default 50), each asking about once a second: open loop with Poisson arrivals, one thread per
  annotator; latency runs from the *scheduled* arrival, so time spent queued behind a slow answer counts;
- saturated: closed-loop client processes (no GIL between them) for a few seconds at a few concurrencies, then the
  best one for the measured window; leases/s = 200 answers completed inside the window / window;
- duplicates: a task id answered twice, an answer whose lease_token is not 1, a task leased more than once in the
  database (lease_token or attempts > 1), or a task whose holder in the database is not the user it was answered to.

Every request comes from an annotator who holds no lease of the kind yet: a user with a lease gets the same task back
(no new lease), so each request uses the next of many pre-made annotator accounts (token + membership), each once
per queue size. Each request is thus a real lease on the full path (token auth, membership check, held-lease check,
lease UPDATE, task detail), which is also what an annotator's next request after a submission costs.

The load generator runs on the same 2 cores as gunicorn and PostgreSQL: every figure includes its CPU (reported).
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform as stdlib_platform
import random
import resource
import sys
import tempfile
import threading
import time
from collections import Counter

import psutil
import psycopg

from tests.bench import seed
from tests.bench.harness import BenchDatabase, Gunicorn, app_root, cpu_calibration_ms, django_env, migrate, percentile
from tests.bench.report import git_sha, write_report

NAME = "lease"
BODY = json.dumps({"kind": seed.KIND}).encode()
GOALS = {  # on the 2-core reference machine (docs/infrastructure.md)
    "lease_p95_ms_1M_1client": ("<=", 10.0),
    "lease_p95_ms_1M_50annotators": ("<=", 25.0),
    "lease_per_s_1M_saturated": (">=", 400.0),
    "duplicate_leases": ("==", 0),
}

# Annotator accounts, set in the parent before any fork: (user_id, token). The shared counter hands each out once.
USERS: list[tuple[int, str]] = []
_COUNTER = None  # multiprocessing.Value


def next_user() -> tuple[int, str] | None:
    with _COUNTER.get_lock():
        index = _COUNTER.value
        if index >= len(USERS):
            return None
        _COUNTER.value = index + 1
    return USERS[index]


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


# ---------------------------------------------------------------- the client


class Leaser:
    """One HTTP/1.1 connection (kept alive when the server allows it; gunicorn's sync workers close it)."""

    def __init__(self, address: tuple[str, int], path: str):
        self.conn = http.client.HTTPConnection(*address, timeout=120)
        self.path = path

    def lease(self, token: str) -> tuple[int, int | None, int | None]:
        """(status, task id, lease_token); status -1 when the connection failed."""
        try:
            self.conn.request("POST", self.path, BODY,
                              {"Authorization": "Token " + token, "Content-Type": "application/json"})
            response = self.conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            return -1, None, None
        if response.status == 200:
            task = json.loads(body)
            return 200, task["id"], task.get("lease_token")
        return response.status, None, None


# A record: (user_id, status, task_id, lease_token, t_due, t_sent, t_done); t_due is the scheduled arrival in the
# open loop and t_sent otherwise. All times are time.monotonic() (CLOCK_MONOTONIC: the same clock in every process).


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sleep_until(t: float) -> None:
    while (left := t - time.monotonic()) > 0:
        time.sleep(left)


def _closed_loop_process(address, path, t_start, t_end, out) -> None:
    leaser, records, exhausted = Leaser(address, path), [], False
    cpu = _cpu_seconds()
    _sleep_until(t_start)
    while time.monotonic() < t_end:
        user = next_user()
        if user is None:
            exhausted = True
            break
        t_sent = time.monotonic()
        status, task_id, token = leaser.lease(user[1])
        records.append((user[0], status, task_id, token, t_sent, t_sent, time.monotonic()))
    out.put((records, exhausted, _cpu_seconds() - cpu))


def _open_loop_process(address, path, annotators, rate, t_start, t_end, rng_seed, out) -> None:
    records, lock, exhausted = [], threading.Lock(), threading.Event()
    t_give_up = t_end + max(5.0, (t_end - t_start) / 2)
    cpu = _cpu_seconds()

    def annotator(k: int) -> None:
        rng, leaser, mine = random.Random(rng_seed * 1009 + k), Leaser(address, path), []
        due = t_start + rng.expovariate(rate)
        while due < t_end:
            _sleep_until(due)
            now = time.monotonic()
            if now > t_give_up:  # overloaded: arrivals still waiting are recorded unsent (latency >= now - due)
                while due < t_end:
                    mine.append((0, 0, None, None, due, now, now))
                    due += rng.expovariate(rate)
                break
            user = next_user()
            if user is None:
                exhausted.set()
                break
            t_sent = time.monotonic()
            status, task_id, token = leaser.lease(user[1])
            mine.append((user[0], status, task_id, token, due, t_sent, time.monotonic()))
            due += rng.expovariate(rate)
        with lock:
            records.extend(mine)

    threads = [threading.Thread(target=annotator, args=(k,)) for k in range(annotators)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put((records, exhausted.is_set(), _cpu_seconds() - cpu))


def _run_processes(targets) -> tuple[list, bool, float]:
    """Start one process per (function, args); gather (records, any exhausted, client CPU seconds)."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    processes = [ctx.Process(target=fn, args=(*args, out), daemon=True) for fn, args in targets]
    for process in processes:
        process.start()
    records, exhausted, cpu = [], False, 0.0
    for _ in processes:  # read before join: a child blocks until its (large) result is read
        part, part_exhausted, part_cpu = out.get()
        records += part
        exhausted |= part_exhausted
        cpu += part_cpu
    for process in processes:
        process.join()
    return records, exhausted, cpu


# ---------------------------------------------------------------- CPU accounting


def set_priority(pid: int, nice: int) -> None:
    """nice the process, and its autogroup when the kernel groups by session (sched_autogroup: nice alone does
    nothing against other sessions' work). Best effort: needs root."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/autogroup", "w") as autogroup:
            autogroup.write(str(nice))
    except OSError:
        pass


class CpuMeter:
    """CPU seconds used, over a phase, by the gunicorn workers, this database's PostgreSQL backends (client
    backends apart from autovacuum/autoanalyze workers), the load generator, and the whole machine.

    Backends come and go (Django reconnects every CONN_MAX_AGE seconds; autovacuum workers live for seconds), so
    a thread samples them every 0.2 s; a process that ends between samples loses at most that much.
    With ``nice`` (negative: needs root) it also raises the priority of exactly those processes (see set_priority).
    """

    def __init__(self, server: Gunicorn, db: BenchDatabase, nice: int = 0):
        self.server, self.db, self.nice = server, db, nice
        self.monitor = db.connect(autocommit=True)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        rows = self.monitor.execute(
            "SELECT pid, backend_type = 'client backend' FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()", [self.db.name]).fetchall()
        processes = [(pid, "postgres" if client else "autovacuum") for pid, client in rows]
        processes += [(p.pid, "gunicorn") for p in psutil.Process(self.server.process.pid).children()]
        for pid, part in processes:
            try:
                process = psutil.Process(pid)
                times = process.cpu_times()
                if self.nice and pid not in self._niced:
                    set_priority(pid, self.nice)
                    self._niced.add(pid)
            except psutil.Error:
                continue
            seconds = times.user + times.system
            if pid not in self._first:  # seen for the first time: born during the phase unless this is the start
                self._first[pid] = seconds if self._starting else 0.0
            self._last[pid] = (part, seconds)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def start(self) -> None:
        self._first, self._last, self._niced, self._starting = {}, {}, set(), True
        if self.nice:
            set_priority(self.server.process.pid, self.nice)
        self._sample()
        self._starting = False
        self._t0, self._busy0, self._self0 = time.monotonic(), self._busy(), _cpu_seconds()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def stop(self, client_cpu: float | None = None) -> dict:
        """CPU seconds per part over the window (client_cpu: what the load-generating children reported)."""
        self._stop.set()
        self._thread.join()
        self._sample()
        parts = {"gunicorn": 0.0, "postgres": 0.0, "autovacuum": 0.0}
        for pid, (part, seconds) in self._last.items():
            parts[part] += seconds - self._first[pid]
        client = (client_cpu or 0.0) + (_cpu_seconds() - self._self0)
        busy = self._busy() - self._busy0
        return {"wall": time.monotonic() - self._t0, **parts, "client": client,
                "other": max(0.0, busy - sum(parts.values()) - client), "busy": busy}

    def close(self) -> None:
        self.monitor.close()


# ---------------------------------------------------------------- phases


def summarize(records, *, window: tuple[float, float] | None = None) -> dict:
    ok = [r for r in records if r[1] == 200]
    unsent = [r for r in records if r[1] == 0]
    latencies = [(r[6] - r[4]) * 1000 for r in ok + unsent]  # unsent (open loop, overloaded): lower bounds
    service = [(r[6] - r[5]) * 1000 for r in ok]
    result = {
        "requests": len(records) - len(unsent), "leases": len(ok), "errors": len(records) - len(ok) - len(unsent),
        "unsent": len(unsent), "statuses": dict(Counter(r[1] for r in records if r[1] not in (0, 200))),
        "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99), "max_ms": max(latencies, default=float("nan")),
        "service_p95_ms": percentile(service, 95),
    }
    if window is not None:
        t0, t1 = window
        done = sum(1 for r in ok if t0 <= r[6] <= t1)
        result.update(window_s=t1 - t0, leases_in_window=done, leases_per_s=done / (t1 - t0))
    elif records:
        span = max(r[6] for r in records) - min(r[4] for r in records)
        result["leases_per_s"] = len(ok) / span if span > 0 else float("nan")
    return result


def closed_loop(address, path, clients: int, seconds: float) -> tuple[list, dict]:
    t_start = time.monotonic() + 0.5  # every process forked and connected before the window opens
    t_end = t_start + seconds
    records, exhausted, cpu = _run_processes(
        [(_closed_loop_process, (address, path, t_start, t_end)) for _ in range(clients)])
    summary = summarize(records, window=(t_start, t_end))
    summary.update(clients=clients, pool_exhausted=exhausted, client_cpu_s=cpu)
    return records, summary


def one_client(address, path, requests: int, max_seconds: float) -> tuple[list, dict]:
    leaser, records = Leaser(address, path), []
    deadline = time.monotonic() + max_seconds
    exhausted = False
    for _ in range(requests):
        if time.monotonic() > deadline:
            break
        user = next_user()
        if user is None:
            exhausted = True
            break
        t_sent = time.monotonic()
        status, task_id, token = leaser.lease(user[1])
        records.append((user[0], status, task_id, token, t_sent, t_sent, time.monotonic()))
    summary = summarize(records)
    summary.update(clients=1, pool_exhausted=exhausted)
    return records, summary


def open_loop(address, path, annotators: int, rate: float, seconds: float, processes: int) -> tuple[list, dict]:
    processes = max(1, min(processes, annotators))
    shares = [annotators // processes + (1 if i < annotators % processes else 0) for i in range(processes)]
    t_start = time.monotonic() + 1.0
    t_end = t_start + seconds
    records, exhausted, cpu = _run_processes(
        [(_open_loop_process, (address, path, share, rate, t_start, t_end, i)) for i, share in enumerate(shares)])
    summary = summarize(records)
    summary.update(clients=annotators, offered_per_s=annotators * rate, seconds=seconds, pool_exhausted=exhausted,
                   client_cpu_s=cpu)
    return records, summary


def check_leases(db: BenchDatabase, records) -> dict:
    """Duplicates seen in the answers and in the database (see the module docstring)."""
    ok = [r for r in records if r[1] == 200]
    per_task = Counter(r[2] for r in ok)
    answered_twice = sum(n - 1 for n in per_task.values() if n > 1)
    token_not_one = sum(1 for r in ok if r[3] != 1)
    with db.connect() as conn:
        rows = conn.execute("SELECT id, holder_id, lease_token, attempts, state FROM annotation_humantask"
                            " WHERE lease_token > 0 OR attempts > 0 OR state <> 'queued'").fetchall()
    leased_twice_in_db = sum(1 for _, _, token, attempts, _ in rows if token > 1 or attempts > 1)
    holder = {task_id: holder_id for task_id, holder_id, *_ in rows}
    wrong_holder = sum(1 for r in ok if holder.get(r[2]) != r[0])
    return {"answered_twice": answered_twice, "token_not_1": token_not_one, "leased_twice_in_db": leased_twice_in_db,
            "holder_mismatch": wrong_holder, "leased_rows_in_db": len(rows), "leases_answered": len(per_task),
            "duplicates": answered_twice + leased_twice_in_db + wrong_holder}


# ---------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_lease", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 10k tasks, a few seconds per phase")
    parser.add_argument("--sizes", help="queued tasks per run, comma-separated (default 100000,1000000)")
    parser.add_argument("--workers", type=int, default=2,
                        help="gunicorn workers (default 2: on 2 cores 2 sync workers beat 3 and 4, see the report)")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (default sync)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (gthread)")
    parser.add_argument("--one-client-requests", type=int, help="requests in the 1-client loop (default 3000)")
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--annotator-rate", type=float, default=1.0, help="requests/s per annotator (Poisson)")
    parser.add_argument("--annotator-seconds", type=float, help="open-loop duration (default 45)")
    parser.add_argument("--clients", help="saturated concurrencies to try, comma-separated (default: workers x 1,2,4)")
    parser.add_argument("--sweep-seconds", type=float, help="seconds per concurrency tried (default 5)")
    parser.add_argument("--saturated-seconds", type=float, help="measured window at the best concurrency (default 20)")
    parser.add_argument("--warmup-seconds", type=float, help="(default 3)")
    parser.add_argument("--nice", type=int, default=0,
                        help="run gunicorn, its PostgreSQL backends and the load generator at this nice value "
                             "(e.g. -10; needs root) when the box is shared with other work; default 0: untouched")
    parser.add_argument("--one-client-seconds", type=float, help="cap on the 1-client loop (default 120; quick 5)")
    parser.add_argument("--name", help="report name (default lease, or lease-quick with --quick)")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = dict(sizes="10000" if quick else "100000,1000000", one_client_requests=400 if quick else 3000,
                    one_client_seconds=5 if quick else 120,
                    annotator_seconds=5 if quick else 45, sweep_seconds=2 if quick else 5,
                    saturated_seconds=4 if quick else 20, warmup_seconds=1 if quick else 3,
                    name="lease-quick" if quick else NAME)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.sizes = [int(s.replace("_", "")) for s in str(args.sizes).split(",")]
    if args.clients:
        args.clients = [int(c) for c in args.clients.split(",")]
    else:
        args.clients = [args.workers * 2] if quick else [args.workers, args.workers * 2, args.workers * 4]
    return args


def users_needed(args) -> int:
    """Accounts for one queue size (they are reused after the queue is re-seeded); sized for 3000 leases/s."""
    ceiling = 3000
    leases = (args.one_client_requests + args.annotators * args.annotator_rate * args.annotator_seconds * 1.5
              + ceiling * (args.warmup_seconds + args.sweep_seconds * (len(args.clients) > 1) * len(args.clients)
                           + args.saturated_seconds + 3))
    return int(leases)


def run(args) -> dict:
    global _COUNTER
    started = time.monotonic()
    if args.nice:
        set_priority(os.getpid(), args.nice)  # this process and the client processes it forks
    ctx = mp.get_context("fork")
    _COUNTER = ctx.Value("q", 0)
    figures: dict = {}
    rows: list[dict] = []
    checks: dict = {}
    phase_cpu: dict = {}
    setup_s: dict = {}
    data_dir = tempfile.mkdtemp(prefix="bench-lease-data-")
    load_before = os.getloadavg()
    calibration_before = cpu_calibration_ms()
    with BenchDatabase() as db:
        env = django_env(db.url, data_dir)
        setup_s["migrate"] = migrate(env)
        t = time.perf_counter()
        schema = seed.Schema(db.url, env)
        world = seed.seed_project(db.url, schema, users_needed(args))
        setup_s["users"] = time.perf_counter() - t
        USERS[:] = world["users"]
        path = f"/api/projects/{world['project_id']}/tasks/next"
        with Gunicorn(env, workers=args.workers, worker_class=args.worker_class, threads=args.threads) as server:
            address = server.address
            meter = CpuMeter(server, db, args.nice)
            try:
                for size in args.sizes:
                    label = size_label(size)
                    print(f"[{time.monotonic() - started:6.0f} s] seeding {size:,} queued tasks", flush=True)
                    setup_s[f"seed_{label}"] = seed.seed_queue(db.url, schema, project_id=world["project_id"],
                                                               media_id=world["media_id"], tasks=size)
                    _COUNTER.value = 0  # the queue was re-seeded: nobody holds a lease, every account is fresh
                    figures[f"cpu_calibration_ms_{label}"] = round(cpu_calibration_ms(), 1)
                    all_records: list = []

                    def phase(name, fn, *fn_args, record=True):
                        print(f"[{time.monotonic() - started:6.0f} s] {label}: {name}", flush=True)
                        meter.start()
                        records, summary = fn(*fn_args)
                        cpu = meter.stop(summary.get("client_cpu_s"))
                        all_records.extend(records)
                        if summary["leases"]:
                            summary["cpu_ms_per_lease"] = {k: round(v * 1000 / summary["leases"], 3)
                                                           for k, v in cpu.items() if k != "wall"}
                        summary["cpu_cores_busy"] = round(cpu["busy"] / cpu["wall"], 2)
                        if record:
                            rows.append({"tasks": label, "phase": name, "clients": summary["clients"],
                                         "leases": summary["leases"], "errors": summary["errors"],
                                         "p50 ms": summary["p50_ms"], "p95 ms": summary["p95_ms"],
                                         "p99 ms": summary["p99_ms"], "leases/s": summary.get("leases_per_s"),
                                         "server ms CPU/lease": (summary.get("cpu_ms_per_lease") or {}).get("gunicorn"),
                                         "pg ms CPU/lease": (summary.get("cpu_ms_per_lease") or {}).get("postgres"),
                                         "autovac ms/lease": (summary.get("cpu_ms_per_lease") or {}).get("autovacuum"),
                                         "cores busy": summary["cpu_cores_busy"]})
                        phase_cpu[f"{label}_{name}"] = summary
                        if summary["errors"]:
                            print(f"    !! {summary['errors']} non-200 answers: {summary['statuses']}", flush=True)
                        if summary.get("pool_exhausted"):
                            print("    !! ran out of fresh annotator accounts: the phase stopped early", flush=True)
                        return summary

                    phase("warm-up", closed_loop, address, path, args.workers * 2, args.warmup_seconds, record=False)
                    one = phase("1 client", one_client, address, path, args.one_client_requests,
                                args.one_client_seconds)
                    figures[f"lease_p50_ms_{label}_1client"] = one["p50_ms"]
                    figures[f"lease_p95_ms_{label}_1client"] = one["p95_ms"]
                    many = phase(f"{args.annotators} annotators", open_loop, address, path, args.annotators,
                                 args.annotator_rate, args.annotator_seconds, 5)
                    figures[f"lease_p50_ms_{label}_{args.annotators}annotators"] = many["p50_ms"]
                    figures[f"lease_p95_ms_{label}_{args.annotators}annotators"] = many["p95_ms"]
                    best = args.clients[0]
                    if len(args.clients) > 1:
                        rates = {c: phase(f"sweep {c} clients", closed_loop, address, path, c,
                                          args.sweep_seconds)["leases_per_s"] for c in args.clients}
                        best = max(rates, key=rates.get)
                        figures[f"lease_per_s_{label}_sweep"] = {str(c): round(r, 1) for c, r in rates.items()}
                    saturated = phase("saturated", closed_loop, address, path, best, args.saturated_seconds)
                    figures[f"lease_per_s_{label}_saturated"] = saturated["leases_per_s"]
                    figures[f"lease_saturated_clients_{label}"] = best
                    figures[f"lease_p95_ms_{label}_saturated"] = saturated["p95_ms"]
                    checks[label] = check_leases(db, all_records)
                    figures[f"errors_{label}"] = sum(1 for r in all_records if r[1] not in (0, 200))
                    figures[f"unsent_{label}"] = sum(1 for r in all_records if r[1] == 0)
                    print(f"    duplicates at {label}: {checks[label]}", flush=True)
            finally:
                meter.close()
                server_log = server.log_tail(2000)
    figures["duplicate_leases"] = sum(c["duplicates"] for c in checks.values())
    figures["errors"] = sum(v for k, v in figures.items() if k.startswith("errors_"))
    goals = {}
    for key, (op, target) in GOALS.items():
        if key in figures:
            value = figures[key]
            goals[key] = {"target": f"{op} {target}", "value": value,
                          "met": {"<=": value <= target, ">=": value >= target, "==": value == target}[op]}
    figures.update(
        goals=goals, duplicate_checks=checks, phases=phase_cpu,
        setup={"nice": args.nice, "workers": args.workers, "worker_class": args.worker_class, "threads": args.threads,
               "keep_alive": args.worker_class != "sync",
               "sizes": args.sizes, "one_client_requests": args.one_client_requests, "annotators": args.annotators,
               "annotator_rate_per_s": args.annotator_rate, "annotator_seconds": args.annotator_seconds,
               "saturated_clients_tried": args.clients, "sweep_seconds": args.sweep_seconds,
               "saturated_seconds": args.saturated_seconds, "warmup_seconds": args.warmup_seconds,
               "annotator_accounts": len(USERS), "machine_cores": os.cpu_count(),
               "machine": f"{stdlib_platform.machine()} {stdlib_platform.processor() or ''}".strip(),
               "python": sys.version.split()[0], "postgres": _pg_version(), "git_sha": git_sha(),
               "loadavg_before": [round(x, 2) for x in load_before],
               "loadavg_after": [round(x, 2) for x in os.getloadavg()],
               "cpu_calibration_ms_before": round(calibration_before, 1),
               "cpu_calibration_ms_after": round(cpu_calibration_ms(), 1),
               "app_root": str(app_root()), "setup_seconds": {k: round(v, 1) for k, v in
                                                                                      setup_s.items()},
               "total_seconds": round(time.monotonic() - started, 1)})
    notes = [
        *([f"run at nice {args.nice} (gunicorn, its PostgreSQL backends, the load generator): the box was shared"]
          if args.nice else []),
        f"gunicorn {args.worker_class} x{args.workers} on 127.0.0.1, DEBUG=0; the load generator shares the "
        f"{os.cpu_count()} cores with gunicorn and PostgreSQL (CPU per lease by part in the JSON 'phases').",
        "Each request is a real lease by an annotator holding no lease (fresh pre-made account per request).",
        "sync workers close the connection after each answer (gunicorn forces it), so every request opens a new "
        "TCP connection on loopback; clients would keep it alive if the server allowed.",
        "50 annotators: open loop, Poisson arrivals; latency from the scheduled arrival (queueing counted); "
        "arrivals still unsent well after the window (overload) count with their wait so far (a lower bound).",
        f"machine load: loadavg {figures['setup']['loadavg_before']} before, {figures['setup']['loadavg_after']} "
        f"after; CPU calibration loop {figures['setup']['cpu_calibration_ms_before']} / "
        f"{figures['setup']['cpu_calibration_ms_after']} ms (lower = faster; other work on the box raises it); "
        "'other' CPU per lease in the JSON is CPU used by processes outside the benchmark.",
        f"duplicate leases: {figures['duplicate_leases']} (answers and database, every phase); "
        f"non-200 answers: {figures['errors']}.",
        *[f"goal {k}: {g['value']:.2f} {g['target']} -> {'met' if g['met'] else 'MISSED'}" for k, g in goals.items()],
    ]
    if figures["errors"]:
        notes.append("server log tail: " + server_log[-500:])
    write_report(args.name, figures, table_rows=rows, notes=notes)
    return figures


def _pg_version() -> str:
    from tests.bench.harness import PG_ADMIN_URL

    with psycopg.connect(PG_ADMIN_URL) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def main(argv=None) -> int:
    args = parse_args(argv)
    figures = run(args)
    return 0 if figures["duplicate_leases"] == 0 and figures["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
