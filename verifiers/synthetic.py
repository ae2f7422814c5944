"""Verifier training examples from the synthetic shapes world, labelled by the simulated annotator's rules.

For each scene of ``model.synthetic`` this builds MV and EV questions of the kinds the engine produces and the
simulated annotator (platform/simulated_annotator/decisions.py, importable with platform/ on sys.path) answers:

* MV: a true instance (accept), the mask of another object for the phrase (wrong colour or shape), a true
  instance for a hard-negative phrase, half an instance, a dilated instance, a vague phrase ("it": unknown to the
  ground truth, so an unsure human rejects);
* EV: every instance boxed (accept, also with an extra wrong box), some missing or only wrong objects boxed
  (reject; as many as complete sets), zero boxes for a present concept (reject) or an absent one (accept: a
  verified negative), a vague phrase (ungroundable).

Labels are the annotator's decisions (with its configured error rate, like human verdicts); ``correct`` is the
error-free answer; ``gold`` is the adjudicated verdict, the majority of ``adjudicators`` independent annotators
(the first is the one whose decision is ``label``), as a gold set is triple-annotated (SA-Co/Gold): thresholds
are calibrated on it, because a single fallible verdict caps the precision any verifier can be measured at.
The world has no text, sensitive or whole-image phrases, so those options never occur here.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from PIL import Image
from scipy import ndimage

from model import rle as rle_lib
from model.synthetic import matches, parse_phrase, render_scene

VAGUE_PHRASES = ("it", "them", "thing", "stuff", "middle", "something", "blue", "red", "large", "striped")


@dataclass
class Example:
    """One supervised question: ``task`` "mv" | "ev", the image, phrase, masks (RLE) and the option label."""

    task: str
    image: Image.Image
    phrase: str
    rles: list[dict]
    label: str
    correct: str = ""
    kind: str = ""
    source: dict = field(default_factory=dict)
    gold: str = ""  # the adjudicated verdict where there is one (calibration uses it), else ""
    # SAM 3's witnesses (verifiers.calibration.SAM3_WITNESSES), where the question came from the engine: its presence
    # score of the pair, its best score among the proposals the question does not box, how many it proposed and its
    # best score among the instances the cap left out, and how much better it likes another phrase of the image for
    # the unboxed proposals (calibration.competing_margin), and the share of the image its semantic mask covers outside
    # the boxed masks (calibration.uncovered_share).
    sam3_presence: float | None = None
    sam3_best_unboxed: float | None = None
    sam3_proposals: int | None = None
    sam3_best_beyond_cap: float | None = None
    sam3_competing_margin: float | None = None
    sam3_uncovered: float | None = None
    # An engine EV question's proposals it leaves unboxed (None: not known, as for the synthetic questions) and each
    # one's competing margin (None: not known): whether every one of them is explained splits each EV claim in two
    # (verifiers.calibration.unboxed_explained).
    unboxed_rles: list[dict] | None = None
    unboxed_margins: list[float] | None = None


def require_simulated_annotator() -> None:
    try:
        import simulated_annotator  # noqa: F401  (lives in platform/, a source root)
    except ImportError as exc:
        raise RuntimeError("verifiers.synthetic needs the simulated annotator: run with PYTHONPATH=platform:. "
                           "(or with the project installed)") from exc


def annotators(error_rate: float, seed: int, n: int) -> list:
    """Configs of ``n`` simulated annotators (at least one) with independent mistakes on the same questions:
    annotator k has seed ``seed + k * 7919``."""
    from simulated_annotator.config import AnnotatorConfig

    return [AnnotatorConfig(error_rate_mv=error_rate, error_rate_ev=error_rate, seed=seed + k * 7919)
            for k in range(max(1, n))]


def adjudicated(answers: list) -> str:
    """The majority decision of independent answers (ties: the first answer's)."""
    votes = Counter(a.decision for a in answers)
    top = max(votes.values())
    return next(a.decision for a in answers if votes[a.decision] == top)


def _pair(key: str, phrase: str, kind: str, instances: list[dict], size: int):
    from simulated_annotator.ground_truth import GroundTruthPair

    return GroundTruthPair(image_id=0, file_name=f"{key}.png", sha256=key, phrase=phrase, phrase_kind=kind,
                           width=size, height=size, instances=tuple(instances), iscrowd=(False,) * len(instances))


def _half(mask: np.ndarray, rng: random.Random) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    angle = rng.uniform(0, np.pi)
    proj = (xs - xs.mean()) * np.cos(angle) + (ys - ys.mean()) * np.sin(angle)
    keep = proj > np.quantile(proj, rng.uniform(0.35, 0.65))
    out = np.zeros_like(mask)
    out[ys[keep], xs[keep]] = True
    return out


def _dilated(mask: np.ndarray, rng: random.Random) -> np.ndarray:
    radius = max(3, int(np.sqrt(mask.sum()) * rng.uniform(0.25, 0.5)))
    return ndimage.binary_dilation(mask, iterations=radius)


def _near_misses(attributes: dict[str, str], objects: list) -> list[int]:
    """Indices of ``objects`` that share the phrase's shape or another of its attributes (a box on one looks
    right at a glance)."""
    return [k for k, obj in enumerate(objects)
            if any(obj.attributes().get(key) == value for key, value in attributes.items())]


def scene_examples(world_seed: int, index: int, *, size: int = 224, error_rate: float = 0.03,
                   adjudicators: int = 3, rng: random.Random | None = None) -> Iterator[Example]:
    """The MV and EV examples of scene ``index`` of world ``world_seed`` (deterministic given ``rng``)."""
    require_simulated_annotator()
    from simulated_annotator.decisions import answer_exhaustivity, answer_mask_verification
    from simulated_annotator.ground_truth import GroundTruth

    rng = rng or random.Random(f"{world_seed}:{index}")
    scene = render_scene(world_seed, index, size=size)
    image = Image.fromarray(scene.image)
    key = f"synthetic-{world_seed}-{index}"
    rles = [rle_lib.encode(m) for m in scene.visible]
    phrases = list(scene.phrases) + [(rng.choice(VAGUE_PHRASES), "vague")]
    pairs = []
    for phrase, kind in phrases:
        if kind == "vague":
            pairs.append((phrase, kind, None))
            continue
        try:
            attributes = parse_phrase(phrase)
        except ValueError:
            attributes = None
        members = [i for i, obj in enumerate(scene.objects) if attributes and matches(attributes, obj)]
        pairs.append((phrase, kind, members))
    truth = GroundTruth(_pair(key, p, k, [rles[i] for i in m], size) for p, k, m in pairs if m is not None)
    configs = annotators(error_rate, world_seed, adjudicators)
    media = {"sha256": key, "name": f"{key}.png"}

    def mv(phrase: str, mask: np.ndarray | dict, kind: str) -> Example | None:
        rle = mask if isinstance(mask, dict) else rle_lib.encode(mask)
        if not rle_lib.area([rle])[0]:
            return None
        task = {"datapoint": {"media": media, "phrase": phrase}, "mask": {"rle": rle}}
        answers = [answer_mask_verification(task, truth, config) for config in configs]
        return Example("mv", image, phrase, [rle], answers[0].decision, answers[0].correct, kind, {"scene": key},
                       adjudicated(answers))

    def ev(phrase: str, boxed: list[int], kind: str) -> Example:
        chosen = [rles[i] for i in boxed]
        task = {"datapoint": {"media": media, "phrase": phrase}, "masks": [{"rle": r} for r in chosen]}
        answers = [answer_exhaustivity(task, truth, config) for config in configs]
        return Example("ev", image, phrase, chosen, answers[0].decision, answers[0].correct, kind, {"scene": key},
                       adjudicated(answers))

    n = len(scene.objects)
    for phrase, kind, members in pairs:
        out: list[Example | None] = []
        if members is None:  # vague phrase
            out.append(mv(phrase, rles[rng.randrange(n)], "mv_vague"))
            out.append(ev(phrase, [i for i in range(n) if rng.random() < 0.5], "ev_vague"))
        elif members:
            i = rng.choice(members)
            out.append(mv(phrase, rles[i], "mv_good"))
            others = [j for j in range(n) if j not in members]
            if others:
                out.append(mv(phrase, rles[rng.choice(others)], "mv_wrong_object"))
            cut = rng.random()
            out.append(mv(phrase, _half(scene.visible[i], rng) if cut < 0.5 else _dilated(scene.visible[i], rng),
                          "mv_half" if cut < 0.5 else "mv_dilated"))
            out.append(ev(phrase, list(members), "ev_complete"))
            if others and rng.random() < 0.3:  # an extra wrong box does not make a set incomplete
                out.append(ev(phrase, list(members) + [rng.choice(others)], "ev_complete_extra"))
            # An incomplete boxed set for every positive that allows one, as many as complete ones: EV must learn
            # whether each matching object is boxed, not only whether the concept is present (with incomplete
            # sets rare, a verifier learns "boxes drawn -> accept").
            if len(members) > 1:
                subset = rng.sample(members, rng.randrange(1, len(members)))
                if others and rng.random() < 0.5:
                    subset.append(rng.choice(others))
                out.append(ev(phrase, subset, "ev_missing"))
            elif others:
                near = _near_misses(parse_phrase(phrase), [scene.objects[j] for j in others])
                pool = [others[k] for k in near] if near and rng.random() < 0.7 else others
                out.append(ev(phrase, rng.sample(pool, min(len(pool), rng.choice((1, 1, 2)))), "ev_missing_wrong"))
            out.append(ev(phrase, [], "ev_zero_present"))
        else:  # a negative: hard (one attribute changed) or absent
            out.append(mv(phrase, rles[rng.randrange(n)], f"mv_{kind}"))
            boxed = [rng.randrange(n)] if rng.random() < 0.2 else []
            out.append(ev(phrase, boxed, f"ev_{kind}" if boxed else f"ev_zero_{kind}"))
        yield from (e for e in out if e is not None)


def example_stream(world_seed: int, *, start: int = 0, size: int = 224, error_rate: float = 0.03,
                   task: str | None = None, step: int = 1, adjudicators: int = 3) -> Iterator[Example]:
    """Examples of scenes start, start+step, ... of world ``world_seed`` forever (optionally one task only).

    ``step`` > 1 splits the stream between data workers: worker w of n streams ``start=start + w, step=n``, so
    the workers' scenes are disjoint and together the same scenes as the single stream."""
    if step < 1:
        raise ValueError("step must be >= 1")
    index = start
    while True:
        for example in scene_examples(world_seed, index, size=size, error_rate=error_rate, adjudicators=adjudicators):
            if task is None or example.task == task:
                yield example
        index += step
