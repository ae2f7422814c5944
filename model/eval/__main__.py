"""``python -m model.eval --gt GT.json [--gt GT2.json ...] --pred PRED.json``: print SA-Co cgF1 metrics as JSON.

Several ``--gt`` files (SA-Co/Gold's three annotators) give the oracle: each pair is scored against the GT
that suits the predictions best. Values are fractions, as the official evaluator prints them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model.eval.cgf1 import SacoFormatError, evaluate_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.eval", description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=Path, action="extend", nargs="+", required=True,
                        help="SA-Co gold-format ground truth; repeat (or list several) for the oracle")
    parser.add_argument("--pred", type=Path, required=True, help="predictions in the COCO results format")
    args = parser.parse_args(argv)
    try:
        result = evaluate_files(args.gt, args.pred)
    except (OSError, SacoFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
