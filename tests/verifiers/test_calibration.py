"""Temperature, auto-accept thresholds that never let a weak verifier accept more errors, and the report."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logit

from model import rle as rle_lib
from verifiers import calibration


def box(x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((32, 32), dtype=bool)
    mask[4:14, x0:x1] = True
    return mask


def test_fit_temperature_recovers_the_temperature_of_the_data():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 5))
    true_t = 2.5
    p = calibration.softmax(logits, true_t)
    labels = np.array([rng.choice(5, p=row) for row in p])
    assert calibration.fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.1)
    assert calibration.nll(logits, labels, true_t) < calibration.nll(logits, labels, 1.0)


def test_threshold_reaches_the_target_precision_on_a_good_verifier():
    rng = np.random.default_rng(1)
    ok = rng.random(2000) < 0.5
    p = np.where(ok, rng.uniform(0.6, 1.0, 2000), rng.uniform(0.0, 0.7, 2000))
    t = calibration.select_threshold(p, ok, 0.98)
    assert t is not None and 0.6 < t <= 0.75
    assert ok[p >= t].mean() >= 0.98
    # The lowest such threshold: one step lower no longer passes the lower bound.
    lower = np.sort(p[p < t])[-1]
    accepted = p >= lower
    assert calibration.wilson_lower(int(ok[accepted].sum()), int(accepted.sum())) < 0.98


def test_a_rejection_threshold_is_certified_on_the_masks_it_would_drop():
    rng = np.random.default_rng(4)
    ok = rng.random(4000) < 0.3
    p = np.where(ok, rng.uniform(0.2, 1.0, 4000), rng.uniform(0.0, 0.5, 4000))
    t = calibration.select_reject_threshold(p, ok, 0.995)
    assert t is not None and 0.15 < t <= 0.25  # below 0.2 every mask is wrong
    assert (~ok[p <= t]).mean() >= 0.995
    # The highest such threshold: one step higher no longer passes the lower bound.
    higher = np.sort(p[p > t])[0]
    dropped = p <= higher
    assert calibration.wilson_lower(int((~ok[dropped]).sum()), int(dropped.sum())) < 0.995
    assert calibration.select_reject_threshold(rng.random(500), rng.random(500) < 0.3, 0.995) is None  # at chance


def test_weak_or_small_evidence_gives_no_threshold():
    rng = np.random.default_rng(2)
    ok = rng.random(500) < 0.7
    assert calibration.select_threshold(rng.random(500), ok, 0.98) is None  # a verifier at chance
    assert calibration.select_threshold([0.99] * 10, [True] * 10, 0.98) is None  # perfect but only 10 items
    assert calibration.select_threshold([], [], 0.98) is None


def test_fallible_single_verdicts_hide_a_perfect_verifier_and_adjudicated_ones_do_not():
    rng = np.random.default_rng(3)
    truth = rng.random(4000) < 0.6
    p = np.where(truth, 0.99, 0.01)  # a verifier that is never wrong
    flips = rng.random((3, 4000)) < 0.03  # three annotators, 3 % mistakes each, independent
    votes = truth ^ flips
    single, majority = votes[0], votes.sum(axis=0) >= 2
    assert calibration.select_threshold(p, single, 0.98) is None  # measured precision ~0.97: capped by the labels
    assert calibration.select_threshold(p, majority, 0.98) == 0.99


def test_ties_are_accepted_together():
    p = [0.9] * 100 + [0.8] * 100
    ok = [True] * 100 + [True] * 60 + [False] * 40
    assert calibration.select_threshold(p, ok, 0.95) == 0.9


def test_cohen_kappa():
    assert calibration.cohen_kappa(list("aabb"), list("aabb")) == 1.0
    assert calibration.cohen_kappa(list("abab"), list("aabb")) == pytest.approx(0.0)
    assert calibration.cohen_kappa(list("aaab"), list("aaaa")) == pytest.approx(0.0)


def test_report_has_accuracy_confusion_kappa_and_precision_at_coverage():
    options = ("accept", "reject")
    logits = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    labels = ["accept", "reject", "reject", "reject"]
    report = calibration.report(logits, labels, options, target_precision=0.9, threshold=0.8)
    assert report["accuracy"] == 0.75
    assert report["confusion"] == {"accept": {"accept": 1, "reject": 0}, "reject": {"accept": 1, "reject": 2}}
    assert report["cohen_kappa"] == pytest.approx(0.5)
    assert report["precision_at_coverage"][-1] == {"coverage": 1.0, "n": 4, "precision": 0.25,
                                                   "threshold": pytest.approx(calibration.softmax(logits)[3, 0])}
    assert report["at_threshold"] == {"coverage": 0.25, "n": 1, "precision": 1.0}
    assert report["accept_auc"] == 1.0


def test_logistic_fit_recovers_the_weights_that_generated_the_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    truth = np.array([2.0, -1.0, 0.5])
    labels = rng.random(4000) < 1 / (1 + np.exp(-(x @ truth[:2] + truth[2])))
    assert calibration.fit_logistic(x, labels) == pytest.approx(truth, abs=0.15)
    with pytest.raises(ValueError, match="one label per row"):
        calibration.fit_logistic(x, labels[:10])


def test_sam3s_witnesses_certify_more_negatives_than_the_verifier_alone():
    """The verifier and SAM 3 each see absence noisily and independently: together they rank it better."""
    rng = np.random.default_rng(1)
    absent = rng.random(6000) < 0.5
    def witness(noise):
        return 1 / (1 + np.exp(-(np.where(absent, 1.5, -1.5) + rng.normal(scale=noise, size=absent.size))))
    p_accept_zero, sam3_absent, unboxed_weak = witness(2.0), witness(1.5), witness(3.0)
    witnesses = {"sam3_presence": 1 - sam3_absent, "sam3_best_unboxed": 1 - unboxed_weak}
    fit, held = slice(0, 3000), slice(3000, None)
    weights = calibration.fit_with_sam3(p_accept_zero[fit], {k: v[fit] for k, v in witnesses.items()}, absent[fit])
    assert set(weights) == {"p_accept_logit", "sam3_presence_logit", "sam3_best_unboxed_logit", "bias"}
    # High presence, or a strong proposal nobody accepted, speaks against absence.
    assert weights["p_accept_logit"] > 0 > max(weights["sam3_presence_logit"], weights["sam3_best_unboxed_logit"])
    both = calibration.with_sam3(p_accept_zero[held], {k: v[held] for k, v in witnesses.items()}, weights)
    assert isinstance(calibration.with_sam3(0.9, {"sam3_presence": 0.1, "sam3_best_unboxed": 0.2}, weights), float)
    with pytest.raises(KeyError, match="sam3_best_unboxed"):
        calibration.with_sam3(0.9, {"sam3_presence": 0.1}, weights)

    def certified(score):
        threshold = calibration.select_threshold(score, absent[held], 0.98)
        return 0 if threshold is None else int((score >= threshold).sum())

    assert certified(both) > 1.2 * certified(p_accept_zero[held])


def test_a_count_witness_enters_as_it_is_and_old_weights_keep_working():
    """How many masks SAM 3 proposed: a set checked from one proposal is complete more often than from three."""
    rng = np.random.default_rng(2)
    proposals = rng.integers(1, 4, size=8000)
    p_accept = rng.uniform(0.5, 1.0, size=8000)
    complete = rng.random(8000) < np.where(proposals == 1, 0.99, 0.85)
    weights = calibration.fit_with_sam3(p_accept, {"sam3_proposals": proposals}, complete)
    assert set(weights) == {"p_accept_logit", "sam3_proposals_count", "bias"}
    assert weights["sam3_proposals_count"] < 0
    assert calibration.witnesses_named(weights) == {"sam3_proposals"}
    z = weights["p_accept_logit"] * logit(0.9) + weights["sam3_proposals_count"] * 2 + weights["bias"]
    assert calibration.with_sam3(0.9, {"sam3_proposals": 2}, weights) == pytest.approx(1 / (1 + np.exp(-z)))
    one, three = (calibration.with_sam3(0.9, {"sam3_proposals": n}, weights) for n in (1, 3))
    assert one > three
    # Weights stored before the count existed name only probabilities, which enter as logits.
    old = {"p_accept_logit": 1.0, "sam3_best_unboxed_logit": -1.0, "bias": 0.0}
    assert calibration.witnesses_named(old) == {"sam3_best_unboxed"}
    assert calibration.with_sam3(0.8, {"sam3_best_unboxed": 0.8}, old) == pytest.approx(0.5)


def test_the_competing_margin_says_how_much_better_another_phrase_explains_each_unboxed_proposal():
    star, other_star = (rle_lib.encode(box(x0, x0 + 10)) for x0 in (0, 20))
    blue_star = [(star, 0.9)]  # another phrase of the image found the same star, and liked it better
    assert calibration.competing_margin([(star, 0.3)], blue_star) == pytest.approx(0.6)
    assert calibration.competing_margins([(star, 0.3), (other_star, 0.2)], blue_star) == pytest.approx([0.6, -0.2])
    # The least over the unboxed proposals: one no other phrase found is this phrase's own candidate.
    assert calibration.competing_margin([(star, 0.3), (other_star, 0.2)], blue_star) == pytest.approx(-0.2)
    assert calibration.competing_margin([(star, 0.3)], []) == pytest.approx(-0.3)
    assert calibration.competing_margin([], blue_star) == 0.0, "nothing unboxed, nothing to explain"


def test_the_uncovered_share_is_the_part_of_the_image_sam3_calls_the_phrase_that_no_boxed_mask_covers():
    two_stars = rle_lib.encode(box(0, 10) | box(20, 30))  # SAM 3's semantic mask: both stars
    first, second = rle_lib.encode(box(0, 10)), rle_lib.encode(box(20, 30))
    image = 32 * 32
    assert calibration.uncovered_share(two_stars, []) == pytest.approx(200 / image), "zero boxes: all of it"
    assert calibration.uncovered_share(two_stars, [first]) == pytest.approx(100 / image), "one star missing"
    assert calibration.uncovered_share(two_stars, [first, second]) == 0.0
    bigger = rle_lib.encode(box(0, 15))  # a boxed mask beyond the semantic mask covers nothing more of it
    assert calibration.uncovered_share(two_stars, [bigger]) == pytest.approx(100 / image)
    assert calibration.uncovered_share(rle_lib.encode(box(0, 0)), [first]) == 0.0, "SAM 3 sees it nowhere"
    assert calibration.uncovered_share(None, [first]) is None, "a proposal that did not record its semantic mask"


def test_a_value_witness_enters_as_it_is():
    rng = np.random.default_rng(3)
    margin = rng.uniform(-1, 1, size=8000)
    p_accept = rng.uniform(0.5, 1.0, size=8000)
    absent = rng.random(8000) < np.where(margin > 0.2, 0.99, 0.8)
    weights = calibration.fit_with_sam3(p_accept, {"sam3_competing_margin": margin}, absent)
    assert set(weights) == {"p_accept_logit", "sam3_competing_margin_value", "bias"} and weights[
        "sam3_competing_margin_value"] > 0
    assert calibration.witnesses_named(weights) == {"sam3_competing_margin"}
    z = weights["p_accept_logit"] * logit(0.9) + weights["sam3_competing_margin_value"] * -0.5 + weights["bias"]
    assert calibration.with_sam3(0.9, {"sam3_competing_margin": -0.5}, weights) == pytest.approx(1 / (1 + np.exp(-z)))


def test_an_unboxed_proposal_is_explained_by_a_sure_rejection_lying_inside_the_boxed_masks_or_another_phrase():
    unknown = [None, None]
    assert calibration.unboxed_explained([], [], [], 0.1), "nothing unboxed: vacuously"
    assert calibration.unboxed_explained([0.1, 0.02], [0.0, 0.0], unknown, 0.1)
    assert not calibration.unboxed_explained([0.1, 0.11], [0.0, 0.0], unknown, 0.1)
    assert calibration.unboxed_explained([0.1, 0.9], [0.0, 0.5], unknown, 0.1), "half inside a boxed mask: a part"
    preferred = calibration.PREFERRED_ELSEWHERE
    assert calibration.unboxed_explained([0.1, 0.9], [0.0, 0.0], [-0.5, preferred], 0.1), "another phrase's instance"
    assert not calibration.unboxed_explained([0.1, 0.9], [0.0, 0.0], [-0.5, preferred - 0.01], 0.1)
    assert not calibration.unboxed_explained([None], [0.0], [None], 0.1), "a proposal MV never judged is no sure reject"
    assert not calibration.unboxed_explained([0.0], [0.0], [None], None), "no certified rejection threshold"
    with pytest.raises(ValueError):
        calibration.unboxed_explained([0.0], [], [None], 0.1)
    with pytest.raises(ValueError):
        calibration.unboxed_explained([0.0], [0.0], [], 0.1)
