"""`make demo` on the embedded defaults (SQLite, local files, eager tasks): the whole Phase-1 loop over HTTP."""
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_demo_runs_phase_one_end_to_end_and_exports_a_snapshot(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "S3_BUCKET", "DJANGO_SETTINGS_MODULE")}
    env.update(DATA_DIR=str(tmp_path), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "manage.py", "demo", "--no-serve", "--images", "4",
                          "--port", str(free_port())], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    table = dict(re.findall(r"^ *(\S.*?\S)\s{2,}(\S.*)$", out.stdout, flags=re.M))
    datapoints = int(table["datapoints"])
    positives, negatives = int(table["accepted positive"]), int(table["accepted negative (verified not present)"])
    assert datapoints > 0 and positives > 0 and negatives > 0
    assert positives + negatives + int(table["rejected (vague / flagged)"]) == datapoints
    assert int(table["human tasks: exhaustivity verification"]) >= datapoints
    assert "SIMULATED" in out.stdout
    committed = json.loads((ROOT / "checkpoints" / "sam3-tiny" / "manifest.json").read_text())
    assert table["model"] == committed["model_version"]  # the demo proposes with the trained tiny checkpoint
    assert (tmp_path / "dataengine.sqlite3").exists()
    [snapshot] = (tmp_path / "storage" / "snapshots").rglob("*.json")
    document = json.loads(snapshot.read_text())
    assert len(document["images"]) == positives + negatives
    assert len(document["annotations"]) == int(table["accepted masks"])
