"""What produced an artifact: the code version (git sha, "-dirty" with uncommitted changes; "unknown" outside git)."""
from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def code_version() -> str:
    """The checkout's short commit (``-dirty`` with local changes); DATAENGINE_CODE_VERSION names it where the
    code runs without its git folder (a copied tree on a GPU machine, an image)."""
    if os.environ.get("DATAENGINE_CODE_VERSION"):
        return os.environ["DATAENGINE_CODE_VERSION"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        )
        sha = out.stdout.strip()
        if out.returncode == 0 and sha:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"
