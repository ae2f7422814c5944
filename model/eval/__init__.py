"""Benchmark evaluation: SA-Co image cgF1 as the official evaluator computes it (``python -m model.eval``)."""
from model.eval.cgf1 import (
    IOU_THRESHOLDS,
    METRIC_NAMES,
    SCORE_THRESHOLD,
    CGF1Result,
    GroundTruth,
    SacoFormatError,
    evaluate,
    evaluate_files,
)

__all__ = [
    "IOU_THRESHOLDS",
    "METRIC_NAMES",
    "SCORE_THRESHOLD",
    "CGF1Result",
    "GroundTruth",
    "SacoFormatError",
    "evaluate",
    "evaluate_files",
]
