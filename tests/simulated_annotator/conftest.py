"""Fixtures for the simulated annotator tests (helpers live in worlds.py)."""
from __future__ import annotations

import pytest

from simulated_annotator.config import AnnotatorConfig
from simulated_annotator.ground_truth import GroundTruth
from tests.simulated_annotator.worlds import CROWD, RED_A, RED_B, box, pair


@pytest.fixture
def world() -> GroundTruth:
    return GroundTruth([
        pair(1, "red square", [RED_A, RED_B]),
        pair(2, "Blue Square", [], kind="hard_negative"),
        pair(3, "dog", [], kind="absent"),
        pair(4, "grass", [CROWD], crowd=[True]),
        pair(5, "red square", [box(5, 5, 15, 15)], sha="img-b"),
    ])


@pytest.fixture
def exact() -> AnnotatorConfig:
    """No mistakes: the correct answers."""
    return AnnotatorConfig(error_rate_mv=0.0, error_rate_ev=0.0, error_rate_correction=0.0)
