"""Smoke check of the benchmarks: `python -m tests.bench.bench_lease --quick` builds a database, serves the API with
gunicorn, leases over HTTP in every phase and finds no duplicate lease (about a minute)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.pg, pytest.mark.e2e, pytest.mark.slow]


def test_quick_lease_benchmark_leases_over_http_without_duplicates(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    env["BENCH_RESULTS_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-m", "tests.bench.bench_lease", "--quick"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((tmp_path / "lease-quick.json").read_text())
    assert report["duplicate_leases"] == 0
    assert report["errors"] == 0
    check = report["duplicate_checks"]["10k"]
    assert check["leases_answered"] == check["leased_rows_in_db"] > 0
    for key in ("lease_p50_ms_10k_1client", "lease_p95_ms_10k_1client", "lease_p50_ms_10k_50annotators",
                "lease_p95_ms_10k_50annotators", "lease_per_s_10k_saturated"):
        assert report[key] > 0, key
    assert report["setup"]["machine_cores"] == os.cpu_count()
