"""Print a benchmark's table and write its figures to bench-results/<name>.json (shared by every benchmark).

The JSON document is flat: ``{"benchmark": name, "written_at": ..., **figures, "table": [...], "notes": [...]}``
so that a figure is read as ``doc["lease_p95_ms_1M_1client"]``.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[2]
RESERVED = ("benchmark", "written_at", "table", "notes")


def results_dir() -> Path:
    """bench-results/ at the repository root (git-ignored); BENCH_RESULTS_DIR overrides it."""
    path = Path(os.environ.get("BENCH_RESULTS_DIR") or ROOT / "bench-results")
    path.mkdir(parents=True, exist_ok=True)
    return path


def git_sha() -> str:
    """The checkout's commit, with ``+dirty`` when the working tree has changes (DATAENGINE_CODE_VERSION where the
    tree has no git folder, as on a GPU machine)."""
    if os.environ.get("DATAENGINE_CODE_VERSION"):
        return os.environ["DATAENGINE_CODE_VERSION"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table; the columns are the union of the rows' keys in first-seen order."""
    if not rows:
        return "(no rows)"
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    first_numeric = [all(_is_number(row.get(col)) for row in rows) for col in columns]

    def line(values: Iterable[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, first_numeric)).rstrip()

    return "\n".join([line(columns), line("-" * w for w in widths), *(line(r) for r in cells)])


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def write_report(name: str, figures: dict, *, table_rows: Sequence[Mapping[str, Any]] = (),
                 notes: Sequence[str] | str = ()) -> Path:
    """Print ``table_rows`` and ``notes``; write ``figures`` (flat, JSON-serialisable) to bench-results/<name>.json."""
    clash = [key for key in figures if key in RESERVED]
    if clash:
        raise ValueError(f"figure names {clash} are reserved in the report document")
    notes = [notes] if isinstance(notes, str) else list(notes)
    document = {"benchmark": name, "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                **figures, "table": [dict(row) for row in table_rows], "notes": notes}
    path = results_dir() / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"\n== {name} ==")
    if table_rows:
        print(format_table(table_rows))
    for note in notes:
        print(f"- {note}")
    print(f"written to {path}")
    return path
