"""Simulated mistakes: random with a fixed seed, at the configured rates, independent of task order."""
from __future__ import annotations

import math

import pytest

from simulated_annotator.config import AnnotatorConfig
from simulated_annotator.decisions import answer_correction, answer_exhaustivity, answer_mask_verification
from simulated_annotator.ground_truth import GroundTruth
from tests.simulated_annotator.worlds import box, pair, task

N = 4000


@pytest.fixture(scope="module")
def many_phrases() -> GroundTruth:
    """N positive pairs on one image, each with one instance, so each question is different."""
    return GroundTruth([pair(i, f"thing {i}", [box(2, 2, 12, 12)]) for i in range(N)])


def _mv_decisions(world: GroundTruth, config: AnnotatorConfig, ids) -> list[str]:
    return [answer_mask_verification(task("mask_verification", world.by_image_id(i), mask=box(2, 2, 12, 12)),
                                     world, config).decision for i in ids]


def _within_binomial(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p))


def test_mv_mistakes_happen_at_the_configured_rate(many_phrases):
    config = AnnotatorConfig(error_rate_mv=0.03, seed=1)
    decisions = _mv_decisions(many_phrases, config, range(N))
    assert _within_binomial(decisions.count("reject"), N, 0.03)  # every correct answer here is "accept"


def test_ev_mistakes_happen_at_the_configured_rate(many_phrases):
    config = AnnotatorConfig(error_rate_ev=0.10, seed=2)
    flipped = sum(answer_exhaustivity(task("exhaustivity_verification", many_phrases.by_image_id(i), masks=[]),
                                      many_phrases, config).mistake for i in range(N))
    assert _within_binomial(flipped, N, 0.10)


def test_ev_mistake_accepts_an_incomplete_datapoint(many_phrases):
    config = AnnotatorConfig(error_rate_ev=1.0)
    answer = answer_exhaustivity(task("exhaustivity_verification", many_phrases.by_image_id(0), masks=[]),
                                 many_phrases, config)
    assert (answer.correct, answer.decision) == ("reject", "accept")


def test_correction_misses_instances_at_the_configured_rate(many_phrases):
    config = AnnotatorConfig(error_rate_correction=0.05, seed=3)
    answers = [answer_correction(task("correction", many_phrases.by_image_id(i), masks=[]), many_phrases, config)
               for i in range(N)]
    missed = sum(a.missed for a in answers)
    assert _within_binomial(missed, N, 0.05)
    assert all(a.added + a.missed == 1 for a in answers)
    # A missed instance costs nothing to add.
    tm = config.time_model
    assert {a.seconds for a in answers if a.missed} == {tm.correction_base}


def test_a_rate_of_one_always_flips_and_zero_never(many_phrases):
    ids = range(200)
    assert set(_mv_decisions(many_phrases, AnnotatorConfig(error_rate_mv=1.0), ids)) == {"reject"}
    assert set(_mv_decisions(many_phrases, AnnotatorConfig(error_rate_mv=0.0), ids)) == {"accept"}


def test_same_seed_same_mistakes_whatever_the_order(many_phrases):
    config = AnnotatorConfig(error_rate_mv=0.2, seed=5)
    forward = _mv_decisions(many_phrases, config, range(500))
    backward = _mv_decisions(many_phrases, config, reversed(range(500)))
    assert forward == list(reversed(backward))


def test_another_seed_makes_other_mistakes(many_phrases):
    a = _mv_decisions(many_phrases, AnnotatorConfig(error_rate_mv=0.2, seed=5), range(500))
    b = _mv_decisions(many_phrases, AnnotatorConfig(error_rate_mv=0.2, seed=6), range(500))
    assert a != b


@pytest.mark.parametrize("field", ["error_rate_mv", "error_rate_ev", "error_rate_correction"])
def test_error_rates_outside_zero_one_are_refused(field):
    with pytest.raises(ValueError, match=field):
        AnnotatorConfig(**{field: 1.5})


def test_the_settings_describe_themselves_as_simulated():
    text = AnnotatorConfig().describe()
    assert text.startswith("SIMULATED")
    assert "MV 3.0%" in text and "EV 24/datapoint" in text
