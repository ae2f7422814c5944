"""What every HTTP benchmark needs: a throw-away PostgreSQL database and a gunicorn server in front of it.

Nothing here imports Django: the load generator stays light and the server is a separate process, as in production.
"""
from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import psycopg
except ImportError:  # a GPU box without the database client: the model-only benchmarks still run
    psycopg = None

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _url_for(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


class BenchDatabase:
    """A fresh database created on enter and dropped on exit (whatever happened in between)."""

    def __init__(self, name: str | None = None):
        self.name = name or f"dataengine_bench_{os.getpid()}"
        self.url = _url_for(self.name)

    def __enter__(self) -> "BenchDatabase":
        self.drop()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc) -> None:
        self.drop()

    def drop(self) -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def connect(self, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.url, **kwargs)


def django_env(database_url: str, data_dir: str, **extra: str) -> dict[str, str]:
    """The production-shaped environment: base settings, DEBUG off, no S3/Celery, only 127.0.0.1 allowed."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "S3_BUCKET",
                        "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATA_DIR")}
    env.update(DJANGO_SETTINGS_MODULE="dataengine.settings.base", DATABASE_URL=database_url, DATA_DIR=data_dir,
               DEBUG="0", SECRET_KEY="bench-" + secrets.token_hex(24), ALLOWED_HOSTS="127.0.0.1",
               LOG_LEVEL="WARNING", HF_HUB_OFFLINE="1", **extra)
    return env


def setup_django_in_process(database_url: str, data_dir: str) -> None:
    """Configure Django in this process (production-shaped settings, eager Celery, local storage under
    ``data_dir``, the test client's host allowed) and migrate."""
    env = {**django_env(database_url, data_dir), "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver"}
    for key in ("DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL", "REDIS_URL", "CELERY_RESULT_BACKEND", "S3_BUCKET",
                "MODEL_CACHE_DIR"):
        os.environ.pop(key, None)
    os.environ.update(env)
    if str(ROOT / "platform") not in sys.path:
        sys.path.append(str(ROOT / "platform"))  # appended: the stdlib `platform` must win
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def app_root() -> Path:
    """The checkout whose platform/ is served: this one, or BENCH_APP_ROOT (a scratch copy with a prototype)."""
    return Path(os.environ.get("BENCH_APP_ROOT") or ROOT).resolve()


def migrate(env: dict[str, str]) -> float:
    """`manage.py migrate` against env's DATABASE_URL; returns the seconds it took."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=app_root(), env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return time.perf_counter() - started


class Gunicorn:
    """gunicorn serving dataengine.wsgi on 127.0.0.1:<free port>; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, env: dict[str, str], *, workers: int, worker_class: str = "sync", threads: int = 1,
                 log_dir: str | None = None):
        self.env, self.workers, self.worker_class, self.threads = env, workers, worker_class, threads
        self.port = free_port()
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="bench-gunicorn-"))
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def __enter__(self) -> "Gunicorn":
        args = [sys.executable, "-m", "gunicorn", "--chdir", str(app_root()), "--pythonpath", "platform,.",
                "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
                "--worker-class", self.worker_class, "--threads", str(self.threads),
                "--timeout", "120", "--graceful-timeout", "5", "--log-level", "warning",
                "--error-logfile", str(self.log_dir / "gunicorn.log"), "dataengine.wsgi:application"]
        self.process = subprocess.Popen(args, cwd=app_root(), env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready(60)
        return self

    def _wait_ready(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.process.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection(*self.address, timeout=5)
                conn.request("GET", "/api/projects/")
                status = conn.getresponse().status
                conn.close()
                if status in (200, 401, 403):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {seconds:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        log = self.log_dir / "gunicorn.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the master stops its workers
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: only what it started
                self.process.wait(5)
        shutil.rmtree(self.log_dir, ignore_errors=True)


def cpu_calibration_ms(rounds: int = 5) -> float:
    """Median wall ms of a fixed pure-Python loop: how fast (or how contended) this machine is right now."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i % 7
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[len(times) // 2]


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a sequence; nan when empty."""
    if not len(values):
        return float("nan")
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil(q/100 * n)
    return ordered[min(rank, len(ordered)) - 1]
