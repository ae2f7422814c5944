"""A SIMULATED human annotator for the demo and the benchmarks (docs/simulated-annotator.md).

A plain client of the platform's public HTTP API that answers human tasks from the synthetic world's ground
truth, with seeded mistakes and a calibrated time model. A test instrument: never human data.
"""
from simulated_annotator.annotator import (
    ALL_TASK_KINDS,
    SIMULATED_LABEL,
    TASK_KINDS,
    ApiError,
    SessionStats,
    SimulatedAnnotator,
    TaskRecord,
    run_team,
)
from simulated_annotator.config import AnnotatorConfig
from simulated_annotator.ground_truth import GroundTruth, GroundTruthPair
from simulated_annotator.report import DatapointSeconds, EscapedErrors, escaped_errors, seconds_per_datapoint
from simulated_annotator.time_model import TimeModel

__all__ = [
    "ALL_TASK_KINDS", "SIMULATED_LABEL", "TASK_KINDS", "AnnotatorConfig", "ApiError", "DatapointSeconds",
    "EscapedErrors",
    "GroundTruth", "GroundTruthPair", "SessionStats", "SimulatedAnnotator", "TaskRecord", "TimeModel",
    "escaped_errors", "run_team", "seconds_per_datapoint",
]
