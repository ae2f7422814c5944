"""Calibration and evaluation of a verifier against held-out human verdicts.

* ``fit_temperature``: the T minimising the NLL of softmax(logits / T) (one scalar per task).
* ``select_threshold``: the lowest P(accept) threshold whose auto-accepted set reaches the target precision —
  judged by a one-sided 95 % Wilson lower bound, so a small or noisy held-out set cannot talk a weak verifier
  into accepting: too little evidence → None → nothing is auto-accepted and humans get the work.
  ``select_reject_threshold``: the same for the masks a verifier may drop unseen (P(accept) at most it).
* ``report``: accuracy, per-option confusion, Cohen's κ with the humans, precision at each coverage.
* ``fit_with_sam3`` / ``with_sam3``: an EV claim ("these masks are all of them", "the concept is absent") from
  the verifier's P(accept) and SAM 3's own evidence (``SAM3_WITNESSES``), combined by a logistic fit on held-out
  verdicts. The two err on different items; on the engine's questions the tiny verifier's P(accept) alone ranks
  checked sets poorly, and a strong proposal the human rejected is the best sign of a missed instance (README:
  what each claim certifies with them, and the routing benchmark before and after).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.special import expit, logit

from model import rle as rle_lib

WILSON_Z = 1.645  # one-sided 95 %
DEFAULT_MIN_SUPPORT = 30
COVERAGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` ([N, K] -> [N, K])."""
    return np.exp(_log_softmax(np.asarray(logits, dtype=np.float64) / temperature))


def nll(logits, labels, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of integer ``labels`` under softmax(logits / T)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 0.0
    return float(-_log_softmax(logits / temperature)[np.arange(len(labels)), labels].mean())


def fit_temperature(logits, labels, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature T in ``bounds`` minimising the held-out NLL (golden-section search on log T).

    ``logits`` [N, K] raw option logits; ``labels`` [N] option indices. Returns 1.0 for an empty set.
    """
    if len(labels) == 0:
        return 1.0
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, labels, math.exp(b))
    return float(math.exp((lo + hi) / 2))


def wilson_lower(successes: int, n: int, z: float = WILSON_Z) -> float:
    """One-sided Wilson score lower bound of a proportion (0 for n = 0)."""
    if n == 0:
        return 0.0
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - margin) / (1 + z * z / n)


def select_threshold(p_accept, is_correct_accept, target_precision: float, *,
                     min_support: int = DEFAULT_MIN_SUPPORT) -> float | None:
    """The lowest threshold t such that the items with P(accept) ≥ t number at least ``min_support`` and their
    precision (share that humans accepted) has a Wilson lower bound ≥ ``target_precision``; None if none does.

    ``p_accept`` [N] calibrated probabilities; ``is_correct_accept`` [N] bools: the human verdict was accept.
    """
    p = np.asarray(p_accept, dtype=np.float64)
    ok = np.asarray(is_correct_accept, dtype=bool)
    if p.shape != ok.shape:
        raise ValueError("p_accept and is_correct_accept must have the same length")
    order = np.argsort(-p, kind="stable")
    p, ok = p[order], ok[order]
    best = None
    correct = 0
    for i in range(len(p)):
        correct += int(ok[i])
        n = i + 1
        if i + 1 < len(p) and p[i + 1] == p[i]:
            continue  # a threshold accepts every item with the same probability
        if n >= min_support and wilson_lower(correct, n) >= target_precision:
            best = float(p[i])
    return best


def select_reject_threshold(p_accept, is_correct_accept, target_precision: float, *,
                            min_support: int = DEFAULT_MIN_SUPPORT) -> float | None:
    """The highest threshold t such that the items with P(accept) ≤ t number at least ``min_support`` and the share
    of them humans rejected has a Wilson lower bound ≥ ``target_precision``; None if none does. Rejections are
    certified on their own: a threshold that certifies good masks says nothing about how reliable a rejection is."""
    t = select_threshold(-np.asarray(p_accept, dtype=np.float64), ~np.asarray(is_correct_accept, dtype=bool),
                         target_precision, min_support=min_support)
    return None if t is None else -t


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's κ between two label sequences (1.0 when both are constant and equal)."""
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError("label sequences differ in length")
    if not a:
        return 0.0
    labels = sorted(set(a) | set(b))
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    expected = sum((a.count(label) / n) * (b.count(label) / n) for label in labels)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return (observed - expected) / (1 - expected)


def confusion(truth: Sequence[str], predicted: Sequence[str], options: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{human option: {predicted option: count}}`` over ``options``."""
    table = {t: {p: 0 for p in options} for t in options}
    for t, p in zip(truth, predicted):
        table[t][p] += 1
    return table


def precision_at_coverage(p_accept, is_correct_accept, coverages: Sequence[float] = COVERAGES) -> list[dict]:
    """Auto-accepting the top ``coverage`` share of items by P(accept): precision and the threshold it implies."""
    p = np.asarray(p_accept, dtype=np.float64)
    ok = np.asarray(is_correct_accept, dtype=bool)
    order = np.argsort(-p, kind="stable")
    rows = []
    for c in coverages:
        k = int(round(c * len(p)))
        if k == 0:
            continue
        top = order[:k]
        rows.append({"coverage": c, "n": k, "precision": float(ok[top].mean()), "threshold": float(p[top[-1]])})
    return rows


def report(logits, labels: Sequence[str], options: Sequence[str], *, temperature: float = 1.0,
           accept_options: Sequence[str] = ("accept",), target_precision: float | None = None,
           threshold: float | None = None) -> dict:
    """Held-out report for one task: accuracy, confusion, κ, NLL, precision at each coverage, and (with
    ``threshold``) the precision and coverage of auto-accepting at it.

    ``logits`` [N, K] raw option logits in ``options`` order; ``labels`` the human verdicts (option strings).
    """
    logits = np.asarray(logits, dtype=np.float64).reshape(len(labels), len(options))
    index = {o: i for i, o in enumerate(options)}
    y = np.array([index[label] for label in labels], dtype=np.int64)
    probs = softmax(logits, temperature)
    predicted = [options[i] for i in probs.argmax(axis=1)] if len(labels) else []
    accept_idx = [index[o] for o in accept_options]
    p_accept = probs[:, accept_idx].sum(axis=1) if len(labels) else np.zeros(0)
    human_accept = np.isin(y, accept_idx)
    out = {
        "n": len(labels),
        "accuracy": float(np.mean([p == t for p, t in zip(predicted, labels)])) if labels else 0.0,
        "cohen_kappa": cohen_kappa(list(labels), predicted),
        "nll": nll(logits, y, temperature),
        "temperature": temperature,
        "label_counts": {o: int((y == i).sum()) for i, o in enumerate(options)},
        "confusion": confusion(labels, predicted, options),
        "precision_at_coverage": precision_at_coverage(p_accept, human_accept),
    }
    if len(labels) and 0 < human_accept.sum() < len(labels):
        from scipy.stats import rankdata

        ranks = rankdata(p_accept)
        pos = human_accept.sum()
        out["accept_auc"] = float((ranks[human_accept].sum() - pos * (pos + 1) / 2) / (pos * (len(y) - pos)))
    if target_precision is not None:
        out["target_precision"] = target_precision
        out["threshold"] = threshold
        if threshold is not None and len(labels):
            chosen = p_accept >= threshold
            out["at_threshold"] = {"coverage": float(chosen.mean()), "n": int(chosen.sum()),
                                   "precision": float(human_accept[chosen].mean()) if chosen.any() else None}
    return out


def _logit(p) -> np.ndarray:
    return logit(np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6))  # a certain 0 or 1 stays finite


def fit_logistic(features, labels, *, l2: float = 1e-2, iterations: int = 50) -> np.ndarray:
    """Weights ``[w_1 .. w_k, bias]`` of P(label) = sigmoid(features @ w + bias), by Newton's method on the
    L2-penalised log-likelihood (the bias is not penalised). ``features`` [N, k], ``labels`` [N] bools."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError("features must be [N, k] with one label per row")
    x = np.hstack([x, np.ones((len(x), 1))])
    penalty = np.diag([l2] * (x.shape[1] - 1) + [0.0])
    w = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = expit(x @ w)
        gradient = x.T @ (p - y) + penalty @ w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


# SAM 3's own evidence on an EV question, beside the verifier's P(accept), and how each enters the logistic: its
# presence score for the pair; the best score among its proposals that the question does not box (rejected by a
# check, or not yet accepted; 0 where none): a strong proposal left out says an instance may be missing; and how many
# proposals it made (after deduplication and the project's cap): a set checked from one proposal is complete far
# more often than one checked from three (world 5's refined questions: 98.3% against 77-93%); and the best score among
# the instances the project's cap (``max_instances``) left out (0 where none): one more strong instance beyond the cap
# says the set may miss it; how much better it likes another phrase of the image for the unboxed proposals
# (``competing_margin``, in [-1, 1]: it enters as it is); and the share of the image its semantic (phrase) mask
# covers outside the boxed masks (``uncovered_share``): where SAM 3 sees the phrase and no boxed mask is, an instance
# may be missing, whichever query failed to draw it (a throwaway study on world 5's engine questions, 900 scenes:
# SAM 3's witnesses alone, a logistic scored out of fold, certified 77% of the checked sets at 0.98 with it, 55%
# without; zero-box sets after a check 67% against 61%).
SAM3_WITNESSES = {"sam3_presence": "logit", "sam3_best_unboxed": "logit", "sam3_proposals": "count",
                  "sam3_best_beyond_cap": "logit", "sam3_competing_margin": "value", "sam3_uncovered": "logit"}
# A proposal of another phrase overlapping an unboxed proposal by at least this IoU is the same object, found for both.
SAME_OBJECT_IOU = 0.5

# Each EV claim is certified twice: on questions where every proposal the question leaves unboxed is explained
# (``unboxed_explained``), under the claim's name + this suffix, and on the rest, under its name. The two differ: on
# world 5's questions before a human check, 96% of datapoints whose proposals MV is sure are all wrong are absent,
# against 21% of the rest, and one threshold over both ran at 0.86 precision on the rest.
UNBOXED_EXPLAINED = "_unboxed_explained"
# Each absence claim (zero boxes) is certified apart where both SAM 3 (presence) and the verifier (1 - P(accept))
# see the concept, under the claim's name + this suffix: one logistic over both kinds said "absent" too readily
# there (verifier-bb207a0a's certified claims on worlds 12 and 6: 0.942-0.970 against 0.985-0.990 elsewhere).
SEEN = "_seen"
# An unboxed proposal with at least this share of its area inside the boxed masks is a part or a duplicate of a
# boxed instance, not a sign of a missed one (world 5: checked sets whose rejected proposals all lie so are 97.6%
# complete, against 86.5% where one lies mostly outside).
INSIDE_BOXED = 0.5
# A proposal a human check rejected that SAM 3 scores at least this much lower than another phrase's proposal on the
# same object (``competing_margins``) is that phrase's instance, not a missed one of this phrase. Chosen on the
# calibration worlds' questions (5, 6, 11; gold verdicts, no verifier): the least margin at which checked sets whose
# rejected proposals are all so preferred (or inside the boxed masks) are as often right as those whose rejected
# proposals all lie inside them (97.4%, 820 sets): 97.7% of 3,487 boxed sets complete and 97.6% of 7,907 zero-box
# sets absent (0.15: 97.3%, 97.2%). Before anyone looked it says much less (80% of 10,114 datapoints whose
# proposals are all so preferred are absent, where MV's sure rejections say 96%): a phrase's instance may be another
# phrase's too ("star", "blue star"), so routing's first question does not count it.
PREFERRED_ELSEWHERE = 0.2


def unboxed_explained(p_accept: Sequence[float | None], inside_boxed: Sequence[float],
                      margins: Sequence[float | None], mv_reject: float | None) -> bool:
    """Whether every proposal a question leaves unboxed is explained: MV is sure it is wrong (calibrated P(accept) at
    most ``mv_reject``; None: MV did not judge it), it lies mostly inside the boxed masks (``inside_boxed``: the
    share of its area, model.rle.share_inside), or, after a human check, SAM 3 clearly prefers another phrase of the
    image for it (``margins``: its ``competing_margins``; None: not known, or asked before a check: see
    ``PREFERRED_ELSEWHERE``). Vacuously true with none."""
    return all((p is not None and mv_reject is not None and p <= mv_reject) or inside >= INSIDE_BOXED
               or (margin is not None and margin >= PREFERRED_ELSEWHERE)
               for p, inside, margin in zip(p_accept, inside_boxed, margins, strict=True))


def seen(sam3_presence: float | None, p_accept: float) -> bool:
    """Whether both models see the concept of a zero-box EV question: SAM 3's presence and the verifier's
    (1 - P(accept), P(accept) being P(absent) with zero boxes) at least 0.5 (an unknown SAM 3 presence: no)."""
    return sam3_presence is not None and sam3_presence >= 0.5 and 1.0 - p_accept >= 0.5


def competing_margins(unboxed: Sequence[tuple[dict, float]], others: Sequence[tuple[dict, float]]) -> list[float]:
    """How much better SAM 3 likes another phrase of the image for each proposal a question leaves unboxed (RLE,
    score): the best score SAM 3 gave a proposal of another phrase on the same object (IoU at least
    ``SAME_OBJECT_IOU``; 0 where none) minus its own.

    A hard negative's proposals lie on the objects of its positive sibling, which the image's other phrase scores
    higher; a present concept's rejected proposal is usually its own best candidate (routing benchmark, Phase 1's
    zero-box sets: 0.29 on average where the human found the concept absent, 0.06 where present)."""
    if not unboxed:
        return []
    overlap = rle_lib.iou([rle for rle, _ in unboxed], [rle for rle, _ in others])
    other_scores = np.array([score for _, score in others], dtype=np.float64)
    best_other = np.where(overlap >= SAME_OBJECT_IOU, other_scores[None, :], 0.0).max(axis=1, initial=0.0)
    return [float(best - score) for best, (_, score) in zip(best_other, unboxed)]


def competing_margin(unboxed: Sequence[tuple[dict, float]], others: Sequence[tuple[dict, float]]) -> float:
    """The witness ``sam3_competing_margin``: the least of ``competing_margins`` (0 with none unboxed)."""
    return min(competing_margins(unboxed, others), default=0.0)


def uncovered_share(semantic: dict | None, boxed: Sequence[dict]) -> float | None:
    """The witness ``sam3_uncovered``: the share of the image that SAM 3's semantic mask (RLE) covers outside the
    boxed masks (RLEs of the same size); None where the proposal has no semantic mask (not recorded)."""
    if semantic is None:
        return None
    height, width = semantic["size"]
    covered = rle_lib.share_inside([semantic], list(boxed))[0]
    return float(rle_lib.area([semantic])[0] * (1.0 - covered) / max(height * width, 1))


def _witness_feature(kind: str, values) -> np.ndarray:
    """A probability (``logit``) enters as its logit, a ``count`` or a ``value`` as it is."""
    return _logit(values) if kind == "logit" else np.asarray(values, dtype=np.float64)


def fit_with_sam3(p_accept, witnesses: dict, is_accept) -> dict:
    """Weights for ``with_sam3``: a logistic on the logit of the verifier's P(accept) and each SAM 3 witness
    (``witnesses``: name -> [N] values, see SAM3_WITNESSES), fitted on held-out verdicts (``is_accept``)."""
    names = sorted(witnesses)
    kinds = [SAM3_WITNESSES.get(n, "logit") for n in names]
    w = fit_logistic(np.stack([_logit(p_accept)] + [_witness_feature(k, witnesses[n]) for n, k in zip(names, kinds)],
                              axis=1), is_accept)
    return {"p_accept_logit": float(w[0]), **{f"{n}_{k}": float(x) for n, k, x in zip(names, kinds, w[1:-1])},
            "bias": float(w[-1])}


def _witness_keys(weights: dict) -> dict[str, str]:
    """Witness name -> its weight's key, for the witnesses a ``fit_with_sam3`` result weighs."""
    return {key.rsplit("_", 1)[0]: key for key in weights
            if key.endswith(("_logit", "_count", "_value")) and key != "p_accept_logit"}


def witnesses_named(weights: dict) -> set[str]:
    """The witnesses a ``fit_with_sam3`` result weighs, besides the verifier's P(accept)."""
    return set(_witness_keys(weights))


def with_sam3(p_accept, witnesses: dict, weights: dict):
    """P(the EV claim holds: the boxed masks are all of them, or the concept is absent) from the verifier's
    P(accept) and the SAM 3 witnesses the weights name (KeyError naming one that is missing)."""
    z = weights["p_accept_logit"] * _logit(p_accept) + weights["bias"]
    for name, key in _witness_keys(weights).items():
        if witnesses.get(name) is None:
            raise KeyError(f"the calibration needs SAM 3's {name}")
        z = z + weights[key] * _witness_feature(key.rsplit("_", 1)[1], witnesses[name])
    out = expit(z)
    return float(out) if np.ndim(out) == 0 else out
