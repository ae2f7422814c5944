"""Supervised fine-tuning of the verifiers on MV/EV verdicts, with calibration and a held-out report.

Two stages, as in the paper (docs/data-engine.md §3): ``base`` trains the whole model on MV and EV questions
merged (the "foundational verifier"; needed from scratch: LoRA on a random base stays at chance), then
``adapters`` trains the LoRA adapter of each task on that task's verdicts with the base frozen. Every question
shows its options in a random order (``shuffle_prob``); the loss is the cross-entropy over the option-letter
logits at the answer position, the same quantity the verifier scores with.

After training, each task's temperature is fitted on one share of the held-out verdicts and its auto-accept
thresholds selected there for ``target_precision`` (verifiers.calibration): ``mv``, ``mv_reject`` (masks routing
may drop unseen, certified at ``drop_precision``), ``ev`` (questions with
boxes), ``ev_zero`` (zero boxes: "not present", claimed at routing before any human look) and
``ev_zero_after_check`` (zero boxes after a human rejected every proposed mask), on adjudicated verdicts where the
examples carry them (``Example.gold``); the other share gives the report. Where every question of an EV claim
carries SAM 3's witnesses (``Example.sam3_presence``, ``sam3_best_unboxed``, ``sam3_proposals``,
``sam3_best_beyond_cap``, ``sam3_competing_margin``, ``sam3_uncovered``: questions the engine asked; those every
question carries), its
threshold applies to the probability from the verifier and SAM 3 together (``with_sam3``, a logistic fitted on the
same calibration share).
Where every EV question lists the proposals it leaves unboxed (``Example.unboxed_rles``), each EV claim is certified
separately on the questions where each is explained — MV is sure it is wrong, it lies mostly inside the boxed
masks, or (after a human check, ``Example.unboxed_margins``) SAM 3 clearly prefers another phrase of the image for
it — (``<claim>_unboxed_explained``) and on the rest (``<claim>``).
Checkpoints are written with a manifest holding the training config, code version, metrics, temperatures,
thresholds and the learning curve.

``device`` ("auto": cuda when available) is where the model trains and evaluates; checkpoints are saved as CPU
tensors and load anywhere. ``data_workers`` > 0 renders and encodes the training batches in that many worker
processes (a DataLoader over an IterableDataset; worker w of n opens its example streams with
``source(worker=w, workers=n)``, so each draws its own examples) while the main process only steps the model;
0 renders in the main process, exactly as before. Held-out sets are always encoded in the main process, once.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from model import rle as rle_lib
from verifiers import calibration
from verifiers.calibration import SAM3_WITNESSES, SEEN, UNBOXED_EXPLAINED
from verifiers.errors import VerifierInputError
from verifiers.model import (
    IMAGE_TOKEN,
    TASKS,
    Verifier,
    encode,
    option_logits,
    save_verifier,
)
from verifiers.options import MV_ACCEPTS, check_option, options_for, shuffled_order
from verifiers.prompts import TEMPLATE_VERSIONS, Template, check_phrase, template_for
from verifiers.render import render_ev, render_mv
from verifiers.synthetic import Example

log = logging.getLogger("verifiers.training")
ACCEPTS = {"mv": MV_ACCEPTS, "ev": ("accept",)}


@dataclass
class TrainConfig:
    """How to train; every field is recorded in the checkpoint's manifest."""

    base_steps: int = 0  # full-model steps on MV+EV merged (0: keep the base as it is)
    base_minutes: float = 0.0  # wall-clock cap of the base stage (0: no cap)
    adapter_steps: int = 0  # LoRA steps per task
    adapter_minutes: float = 0.0  # wall-clock cap per task (0: no cap)
    batch_size: int = 32
    lr: float = 1e-3
    lr_final: float = 1e-4  # cosine decay from lr to lr_final over the stage
    warmup_steps: int = 50
    weight_decay: float = 0.01
    adapter_lr: float = 5e-4
    lora_r: int = 8
    lora_alpha: int = 16
    shuffle_prob: float = 1.0  # share of questions whose options are shown in a random order
    mv_fraction: float = 0.5  # share of base-stage batches that are MV questions
    mv_accept_fraction: float = 0.0  # share of MV training questions the annotator accepted (0: as streamed)
    cross_attn_gate: float = 1.0  # initial cross-attention gates when training from scratch (0: Mllama's 0)
    calibration_fraction: float = 0.5  # share of the held-out set used to calibrate (the rest is the report)
    eval_every: int = 250  # steps between held-out evaluations (and intermediate checkpoints)
    target_precision: float = 0.98
    # MV's rejection threshold (masks routing drops unseen) is certified at this precision: a good mask dropped
    # costs a correction job, a look costs seconds, so rejections must be surer than acceptances.
    drop_precision: float = 0.995
    min_support: int = calibration.DEFAULT_MIN_SUPPORT
    shuffle_buffer: int = 1024
    seed: int = 0
    threads: int = 1
    device: str = "auto"  # "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:1", ...
    data_workers: int = 0  # processes rendering + encoding training batches (0: in the main process)
    prefetch: int = 4  # batches each data worker keeps ready
    # Show the composites at this many px (a whole multiple of the starting verifier's render size, its patch grid
    # kept: verifiers.model.rescale_render); 0 keeps the render size.
    render_size: int = 0


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when torch sees a GPU, else cpu; anything else as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    return device


# ----------------------------------------------------------------------------------------------
# Questions
# ----------------------------------------------------------------------------------------------


def render_question(example: Example, *, size: int, order: Sequence[str],
                    templates: Mapping[str, Template] | None = None) -> tuple[Image.Image, str]:
    """(image, prompt) for ``example`` with its options in ``order``, asked with ``templates[task]`` (a verifier's
    own: Verifier.template) or the current template. VerifierInputError for bad input."""
    phrase = check_phrase(example.phrase)
    template = (templates or {}).get(example.task) or template_for(example.task)
    if example.task == "mv":
        if len(example.rles) != 1:
            raise VerifierInputError("an MV example has exactly one mask")
        return render_mv(example.image, example.rles[0], phrase, size=size), \
            template.render(phrase=phrase, order=order)
    return render_ev(example.image, example.rles, phrase, size=size, line=template.box_line(size)), \
        template.render(phrase=phrase, order=order, n_boxes=len(example.rles))


def _image_token(processor) -> int:
    return processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)


def batch_inputs(processor, examples: Sequence[Example], *, size: int, rng: random.Random | None,
                 shuffle_prob: float, templates: Mapping[str, Template] | None = None) -> tuple[dict, torch.Tensor]:
    """Encoded inputs and target letter indices for a batch of one task (options shuffled with ``rng``)."""
    task = examples[0].task
    images, texts, targets = [], [], []
    for example in examples:
        order = shuffled_order(task, rng) if rng is not None and rng.random() < shuffle_prob else options_for(task)
        image, text = render_question(example, size=size, order=order, templates=templates)
        images.append(image)
        texts.append(text)
        targets.append(order.index(example.label))
    return encode(processor, images, texts), torch.tensor(targets)


def heldout_batches(processor, examples: Sequence[Example], *, size: int, batch_size: int = 64,
                    templates: Mapping[str, Template] | None = None) -> Iterator[dict]:
    """Encoded inputs (canonical option order, on CPU) of held-out examples, ``batch_size`` at a time, encoded as
    they are read (tens of thousands at once would not fit in memory: ~0.3 MB each at 112 px, 1.2 MB at 224)."""
    for start in range(0, len(examples), batch_size):
        yield batch_inputs(processor, examples[start:start + batch_size], size=size, rng=None, shuffle_prob=0.0,
                           templates=templates)[0]


def _to(inputs: dict, device: torch.device) -> dict:
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
            for k, v in inputs.items()}


@torch.no_grad()
def heldout_logits(model, processor, letter_ids, examples: Sequence[Example], *, size: int,
                   batch_size: int = 64, device: torch.device | str | None = None,
                   encoded: Iterable[dict] | None = None) -> np.ndarray:
    """Raw option logits [N, K] (canonical option order) for held-out examples of one task.

    ``encoded``: their ``heldout_batches`` when already computed; ``device``: where the model is (default cpu)."""
    if not examples:
        return np.zeros((0, len(options_for("mv"))))
    task = examples[0].task
    n = len(options_for(task))
    device = torch.device(device or "cpu")
    model.eval()
    if encoded is None:
        encoded = heldout_batches(processor, examples, size=size, batch_size=batch_size)
    chunks = []
    for inputs in encoded:
        chunks.append(option_logits(model, _to(inputs, device), letter_ids, n,
                                    image_token_id=_image_token(processor)).float().cpu())
    return torch.cat(chunks).numpy()


# ----------------------------------------------------------------------------------------------
# Example sources
# ----------------------------------------------------------------------------------------------


def shuffled(stream: Iterable[Example], buffer: int, rng: random.Random) -> Iterator[Example]:
    """A shuffle buffer over a stream (examples of one scene are correlated)."""
    pool: list[Example] = []
    for example in stream:
        if len(pool) < buffer:
            pool.append(example)
            continue
        i = rng.randrange(buffer)
        yield pool[i]
        pool[i] = example
    rng.shuffle(pool)
    yield from pool


def cycle_examples(examples: Sequence[Example], rng: random.Random) -> Iterator[Example]:
    """Epochs over a fixed list, reshuffled each time."""
    if not examples:
        raise ValueError("no training examples")
    order = list(range(len(examples)))
    while True:
        rng.shuffle(order)
        for i in order:
            yield examples[i]


def split_heldout(examples: Sequence[Example], fraction: float) -> tuple[list[Example], list[Example]]:
    """(train, held-out) split by a hash of the image and phrase, so one item never lands on both sides."""
    train, held = [], []
    for example in examples:
        key = f"{example.source.get('image') or example.source.get('scene') or id(example.image)}|{example.phrase}"
        bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2**32
        (held if bucket < fraction else train).append(example)
    return train, held


def load_example_sets(paths: Sequence[str | Path], images_dirs: Sequence[str | Path]) -> tuple[list[Example], list]:
    """The examples of several files, each read with the folder its images are relative to (``load_examples``),
    and where each came from: its path, its images and, where the file has one, how it was made
    (``verifiers.engine_questions``' meta file)."""
    from verifiers.engine_questions import meta_path

    if len(paths) != len(images_dirs) or not paths:
        raise ValueError(f"each examples file needs its images folder: {len(paths)} files, {len(images_dirs)} folders")
    examples, sources = [], []
    for path, images in zip(paths, images_dirs):
        examples += load_examples(path, images)
        made_by = json.loads(meta_path(path).read_text()) if meta_path(path).exists() else None
        sources.append({"path": str(path), "images": str(images), "made_by": made_by})
    return examples, sources


def _number_in(value, low: float, high: float) -> bool:
    """A JSON number (not a bool) within [low, high]."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def load_examples(path: str | Path, images_dir: str | Path) -> list[Example]:
    """Examples from JSONL lines ``{"task", "image", "phrase", "rles", "label"}`` (image relative to images_dir),
    optionally ``"gold"``: the adjudicated verdict (a reviewer's or the majority of several annotators').

    Raises ValueError naming the line for anything malformed.
    """
    images_dir = Path(images_dir)
    cache: dict[str, Image.Image] = {}
    out = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            task = row["task"]
            options_for(task)
            label = check_option(task, row["label"])
            name = row["image"]
            if name not in cache:
                with Image.open(images_dir / name) as handle:
                    cache[name] = handle.convert("RGB")
            rles = list(row.get("rles") or [])
            if task == "mv" and len(rles) != 1:
                raise ValueError("an MV example has exactly one mask")
            gold = check_option(task, row["gold"]) if row.get("gold") else ""
            witnesses = {n: row.get(n) for n in SAM3_WITNESSES}
            for witness, value in witnesses.items():
                if value is None:
                    continue
                if SAM3_WITNESSES[witness] == "count":
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise ValueError(f"{witness} must be an integer >= 0")
                elif SAM3_WITNESSES[witness] == "value":
                    if not _number_in(value, -1.0, 1.0):
                        raise ValueError(f"{witness} must be a number in [-1, 1]")
                elif not _number_in(value, 0.0, 1.0):
                    raise ValueError(f"{witness} must be a number in [0, 1]")
            unboxed = row.get("unboxed_rles")
            if unboxed is not None:
                if task != "ev" or not isinstance(unboxed, list):
                    raise ValueError("unboxed_rles must be a list of RLE masks, on an EV example")
                size = (cache[name].height, cache[name].width)
                try:
                    unboxed = [rle_lib.validate(r, size=size) for r in unboxed]
                except rle_lib.InvalidRLE as exc:
                    raise ValueError(f"unboxed_rles: {exc}") from exc
            margins = row.get("unboxed_margins")
            if margins is not None and (unboxed is None or not isinstance(margins, list) or len(margins) != len(unboxed)
                                        or not all(_number_in(m, -1.0, 1.0) for m in margins)):
                raise ValueError("unboxed_margins must be a number in [-1, 1] per proposal of unboxed_rles")
            out.append(Example(task, cache[name], row["phrase"], rles, label, row.get("correct", label),
                               row.get("kind", ""), {"image": name}, gold, **witnesses, unboxed_rles=unboxed,
                               unboxed_margins=margins))
        except (KeyError, ValueError, OSError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from exc
    return out


def correction_examples(image: Image.Image, phrase: str, *, added: Sequence[dict], final: Sequence[dict],
                        source: dict | None = None) -> list[Example]:
    """Signals a finished exhaustive correction implies: each human-added mask is a good MV example ("accept"),
    and the final mask set is a good EV example ("accept": nothing missing)."""
    source = source or {}
    out = [Example("mv", image, phrase, [rle], "accept", "accept", "correction_added", source) for rle in added]
    out.append(Example("ev", image, phrase, list(final), "accept", "accept", "correction_final", source))
    return out


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


def _lr_at(step: int, total: int, config: TrainConfig, peak: float, time_progress: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to lr_final over the stage (by steps or by its wall-clock cap)."""
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    progress = min(1.0, max(time_progress, (step - config.warmup_steps) / max(1, total - config.warmup_steps)))
    final = min(config.lr_final, peak)
    return final + 0.5 * (peak - final) * (1 + math.cos(math.pi * progress))


@dataclass
class Heldout:
    """Held-out examples per task, interleaved into a calibration share and a test share (the report).

    ``calibration_fraction`` 0.5 gives every other example of a kind to calibration and the rest to the test.
    Certifying a threshold takes many accepted items (a Wilson lower bound of 0.98 needs ~135 with no error), so a
    larger calibration share spends the held-out examples where the threshold is chosen."""

    examples: dict[str, list[Example]]
    calibration_fraction: float = 0.5
    # Keep the encoded inputs between evaluations (training evaluates the same small set again and again); a
    # one-off calibration on a large set encodes them as it goes.
    keep_encoded: bool = True
    _encoded: dict = field(default_factory=dict, repr=False, compare=False)

    def halves(self, task: str) -> tuple[list[int], list[int]]:
        """(calibration indices, test indices) of the task's examples, interleaved within each kind of question
        (``Example.kind``), so that every kind, and every threshold chosen on one, has its test share."""
        strata: dict[str, list[int]] = {}
        for i, example in enumerate(self.examples.get(task, [])):
            strata.setdefault(getattr(example, "kind", ""), []).append(i)
        test_share = 1.0 - self.calibration_fraction
        calib, test = [], []
        for indices in strata.values():
            for rank, i in enumerate(indices):
                (test if math.floor((rank + 1) * test_share) > math.floor(rank * test_share) else calib).append(i)
        return sorted(calib), sorted(test)

    def encoded(self, task: str, processor, *, size: int, batch_size: int = 64,
                templates: Mapping[str, Template] | None = None) -> Iterable[dict]:
        """The task's examples encoded, once where ``keep_encoded`` (they never change): evaluations stop
        re-rendering them."""
        batches = partial(heldout_batches, processor, self.examples.get(task) or [], size=size, batch_size=batch_size,
                          templates=templates)
        if not self.keep_encoded:
            return batches()
        version = ((templates or {}).get(task) or template_for(task)).version
        key = (task, id(processor), size, batch_size, version)
        if key not in self._encoded:
            self._encoded[key] = list(batches())
        return self._encoded[key]


def calibration_label(example: Example) -> str:
    """The verdict a threshold is calibrated on: the adjudicated one where the example has it."""
    return example.gold or example.label


# Zero-box questions asked of every datapoint before a human saw it (the routing's "not present" claim), as
# opposed to after a human check rejected every proposed mask. The two populations differ: after a check mostly
# negatives remain, so one P(accept) is more often right there, and a threshold chosen on them is too lax at routing.
BEFORE_CHECK_KINDS = frozenset({"engine_before_check", "outcome_before_check"})


def threshold_groups(task: str, examples: Sequence[Example], explained: np.ndarray | None = None,
                      p_accept: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Which held-out items each threshold is chosen on. MV: every mask. EV: ``ev`` on questions with boxes
    (are these masks all of them?), ``ev_zero`` on zero-box questions asked before any human look and
    ``ev_zero_after_check`` on those asked after a human check (is the concept absent?), because routing uses them
    for different claims and their precision at one P(accept) differs. Where the examples do not say when they
    were asked (``BEFORE_CHECK_KINDS``), both zero-box thresholds are chosen on every zero-box question.
    With ``explained`` (per question: every proposal it leaves unboxed is explained), each EV claim is
    split: ``<claim>_unboxed_explained`` on those questions, ``<claim>`` on the rest (verifiers.calibration).
    With ``p_accept`` (EV's, per question) as well, each absence claim is split again: ``<name>_seen`` where both
    SAM 3 and the verifier see the concept (calibration.seen), ``<name>`` on the rest."""
    if task == "mv":
        return {"mv": np.ones(len(examples), dtype=bool)}
    zero = np.array([not e.rles for e in examples], dtype=bool)
    before = np.array([e.kind in BEFORE_CHECK_KINDS for e in examples], dtype=bool)
    if not (zero & before).any() or not (zero & ~before).any():
        groups = {"ev": ~zero, "ev_zero": zero, "ev_zero_after_check": zero}
    else:
        groups = {"ev": ~zero, "ev_zero": zero & before, "ev_zero_after_check": zero & ~before}
    if explained is None:
        return groups
    split = {}
    for name, member in groups.items():
        split[name], split[name + UNBOXED_EXPLAINED] = member & ~explained, member & explained
    if p_accept is None:
        return split
    both_see = np.array([calibration.seen(e.sam3_presence, p) for e, p in zip(examples, p_accept)], dtype=bool)
    for name in [n for n in split if n.startswith("ev_zero")]:
        split[name], split[name + SEEN] = split[name] & ~both_see, split[name] & both_see
    return split


def accept_probability(task: str, logits: np.ndarray, temperature: float) -> np.ndarray:
    """P(accept) per question from its option logits (canonical order) at ``temperature``: the softmax summed over
    the task's accepting options (MV: accept, accept as text)."""
    options = options_for(task)
    return calibration.softmax(logits, temperature)[:, [options.index(o) for o in ACCEPTS[task]]].sum(axis=1)


def claim_witnesses(examples: Sequence[Example], member: np.ndarray, names: Iterable[str]) -> dict[str, np.ndarray]:
    """SAM 3's witnesses ``names`` of every question, as ``calibration.with_sam3`` weighs them; 0.5 (a placeholder
    no threshold reads) on the questions outside the claim (``member``)."""
    return {w: np.array([getattr(e, w) if m else 0.5 for e, m in zip(examples, member)], dtype=np.float64)
            for w in names}


def mask_key(example: Example, rle: dict) -> tuple:
    """The MV question on ``rle`` for ``example``'s image and phrase: MV scores are looked up by it."""
    return id(example.image), example.phrase, json.dumps(rle, sort_keys=True)


def explained_questions(model, processor, letter_ids, ev_examples: Sequence[Example], scored: Mapping[tuple, float],
                        mv_reject: float | None, *, temperature: float, size: int, device,
                        templates: Mapping[str, Template] | None = None) -> np.ndarray | None:
    """Per EV question: whether every proposal it leaves unboxed is explained (verifiers.calibration.unboxed_explained),
    as routing judges it: another phrase's preference counts only on questions asked after a human check.
    ``scored``: MV P(accept) already known, by ``mask_key``; the rest are asked with the MV adapter. None where some
    question does not list its unboxed proposals."""
    if not ev_examples or any(e.unboxed_rles is None for e in ev_examples):
        return None
    known = dict(scored)
    missing: dict[tuple, Example] = {}
    for example in ev_examples:
        for rle in example.unboxed_rles:
            key = mask_key(example, rle)
            if key not in known and key not in missing:
                missing[key] = Example("mv", example.image, example.phrase, [rle], "reject")
    if missing:
        questions = list(missing.values())
        if hasattr(model, "set_adapter"):
            model.set_adapter("mv")
        logits = heldout_logits(model, processor, letter_ids, questions, size=size, device=device,
                                encoded=heldout_batches(processor, questions, size=size, templates=templates))
        known.update(zip(missing, accept_probability("mv", logits, temperature)))
        if hasattr(model, "set_adapter"):
            model.set_adapter("ev")
    return np.array([calibration.unboxed_explained(
        [known[mask_key(e, r)] for r in e.unboxed_rles], rle_lib.share_inside(e.unboxed_rles, e.rles),
        e.unboxed_margins if e.unboxed_margins is not None and e.kind not in BEFORE_CHECK_KINDS
        else [None] * len(e.unboxed_rles), mv_reject) for e in ev_examples], dtype=bool)


def evaluate(model, processor, letter_ids, heldout: Heldout, *, size: int, config: TrainConfig,
             device: torch.device | str | None = None, templates: Mapping[str, Template] | None = None) -> dict:
    """Calibrate each task on the calibration half and report on the test half (see module docstring).

    ``templates``: how the questions are asked, which must be how the verifier will be asked (a checkpoint's own,
    Verifier.template); the current templates by default, as training uses them.

    Temperatures and thresholds are fitted on each item's calibration label (``calibration_label``: the
    adjudicated verdict where there is one); the report compares with the single verdicts, and gives the
    precision at each threshold against the adjudicated verdicts on the test half."""
    device = torch.device(device) if device is not None else resolve_device(config.device)
    result = {"temperature": {}, "thresholds": {}, "metrics": {}, "with_sam3": {}}
    mv_scored: dict[tuple, float] = {}  # MV P(accept) by mask_key, for the EV claims' split
    for task in TASKS:
        examples = heldout.examples.get(task) or []
        if hasattr(model, "set_adapter"):
            model.set_adapter(task)  # each task is judged with its own adapter, as the Verifier scores it
        explained = None if task == "mv" else explained_questions(
            model, processor, letter_ids, examples, mv_scored, result["thresholds"].get("mv_reject"),
            temperature=result["temperature"].get("mv", 1.0), size=size, device=device, templates=templates)
        if not examples:
            groups = threshold_groups(task, examples, explained)
            result["temperature"][task] = 1.0
            result["thresholds"].update({name: None for name in groups})
            continue
        options = options_for(task)
        logits = heldout_logits(model, processor, letter_ids, examples, size=size, device=device,
                                encoded=heldout.encoded(task, processor, size=size, templates=templates))
        labels = [e.label for e in examples]
        calib, test = (np.array(half, dtype=np.int64) for half in heldout.halves(task))
        y_cal = np.array([options.index(calibration_label(e)) for e in examples])
        temperature = calibration.fit_temperature(logits[calib], y_cal[calib])
        accept_idx = [options.index(o) for o in ACCEPTS[task]]
        p_accept = accept_probability(task, logits, temperature)
        groups = threshold_groups(task, examples, explained, p_accept)
        calibrated_accept = np.isin(y_cal, accept_idx)
        test_labels = [labels[i] for i in test]
        report = calibration.report(logits[test], test_labels, options, temperature=temperature,
                                    accept_options=ACCEPTS[task], target_precision=config.target_precision)
        report["calibration_labels"] = ("adjudicated" if all(examples[i].gold for i in calib) else
                                        "single verdicts" if not any(examples[i].gold for i in calib) else
                                        "adjudicated where available")
        report["thresholds"] = {}
        for name, member in groups.items():
            cal, tst = calib[member[calib]], test[member[test]]
            score, with_sam3 = p_accept, None
            # The witnesses every question of the claim carries (files written before a witness existed lack it).
            named = [w for w in SAM3_WITNESSES if all(getattr(examples[i], w) is not None
                                                      for i in np.flatnonzero(member))]
            if task == "ev" and len(cal) and named:
                # The claim from the verifier and SAM 3's witnesses together (verifiers.calibration).
                witnesses = claim_witnesses(examples, member, named)
                with_sam3 = calibration.fit_with_sam3(p_accept[cal], {w: v[cal] for w, v in witnesses.items()},
                                                      calibrated_accept[cal])
                score = calibration.with_sam3(p_accept, witnesses, with_sam3)
                result["with_sam3"][name] = with_sam3
            threshold = calibration.select_threshold(score[cal], calibrated_accept[cal], config.target_precision,
                                                     min_support=config.min_support)
            chosen = tst[score[tst] >= threshold] if threshold is not None else tst[:0]
            report["thresholds"][name] = {
                "threshold": threshold, "with_sam3": with_sam3 is not None,
                "n_calibration": int(len(cal)), "n_test": int(len(tst)),
                "test_coverage": float(len(chosen) / len(tst)) if len(tst) else 0.0,
                "test_precision_vs_adjudicated": float(calibrated_accept[chosen].mean()) if len(chosen) else None,
                "test_precision_vs_single": float(np.isin([options.index(labels[i]) for i in chosen],
                                                          accept_idx).mean()) if len(chosen) else None}
            result["thresholds"][name] = threshold
        if task == "mv":
            reject = calibration.select_reject_threshold(p_accept[calib], calibrated_accept[calib],
                                                         config.drop_precision, min_support=config.min_support)
            dropped = test[p_accept[test] <= reject] if reject is not None else test[:0]
            report["thresholds"]["mv_reject"] = {
                "threshold": reject, "drop_precision": config.drop_precision, "n_calibration": int(len(calib)),
                "n_test": int(len(test)), "test_coverage": float(len(dropped) / len(test)) if len(test) else 0.0,
                "test_precision_vs_adjudicated": float((~calibrated_accept[dropped]).mean()) if len(dropped) else None}
            result["thresholds"]["mv_reject"] = reject
            mv_scored = {mask_key(e, e.rles[0]): float(p) for e, p in zip(examples, p_accept)}
        predicted = calibration.softmax(logits[test], temperature).argmax(axis=1)
        by_kind: dict[str, list[int]] = {}
        for i, p in zip(test, predicted):
            example = examples[i]
            by_kind.setdefault(example.kind or "all", []).append(int(options[p] == (example.correct or example.label)))
        report["accuracy_vs_truth_by_kind"] = {k: round(float(np.mean(v)), 4) for k, v in sorted(by_kind.items())}
        report["raw_accuracy_calibration_half"] = float((logits[calib].argmax(axis=1) == y_cal[calib]).mean())
        result["temperature"][task] = temperature
        result["metrics"][task] = report
    return result


def _trainable(model, task: str | None) -> list[torch.nn.Parameter]:
    params = []
    for name, param in model.named_parameters():
        param.requires_grad = (task is None and "lora_" not in name) or (
            task is not None and "lora_" in name and f".{task}." in name)
        if param.requires_grad:
            params.append(param)
    return params


def _batches(stream: Iterator[Example], batch_size: int) -> Iterator[list[Example]]:
    while True:
        yield [next(stream) for _ in range(batch_size)]


StreamSource = Callable[..., Iterator[Example]]  # source(worker=0, workers=1) -> a fresh example stream


def balanced(stream: Iterator[Example], accepts: Sequence[str], fraction: float, rng: random.Random,
             *, buffer: int = 256) -> Iterator[Example]:
    """``stream`` re-drawn so that a share ``fraction`` of its examples has an accept label (0 or 1: unchanged).

    Each output is an accept with probability ``fraction``; the examples of the class not asked for wait in a
    bounded buffer (the oldest dropped when full), so the minority class is used as it comes and the majority
    class is thinned. Only training streams are balanced: held-out and calibration sets keep the natural mix."""
    if not 0.0 < fraction < 1.0:
        yield from stream
        return
    waiting: dict[bool, list[Example]] = {True: [], False: []}
    while True:
        want = rng.random() < fraction
        while not waiting[want]:
            example = next(stream)
            queue = waiting[example.label in accepts]
            queue.append(example)
            if len(queue) > buffer:
                queue.pop(0)
        yield waiting[want].pop(0)


def question_batches(processor, streams: dict[str, Iterator[Example]], *, task: str | None, config: TrainConfig,
                     size: int, rng: random.Random) -> Iterator[tuple[str, dict, torch.Tensor]]:
    """(task, encoded inputs, target letter indices) forever: each batch's task (``task``, or MV with
    probability mv_fraction), then its questions with options shuffled by ``rng``; MV questions re-balanced to
    ``mv_accept_fraction`` accepts when set."""
    if "mv" in streams and config.mv_accept_fraction:
        streams = {**streams, "mv": balanced(streams["mv"], ACCEPTS["mv"], config.mv_accept_fraction,
                                             random.Random(f"{rng.random()}:balance"))}
    batches = {t: _batches(s, config.batch_size) for t, s in streams.items()}
    while True:
        current = task or ("mv" if rng.random() < config.mv_fraction else "ev")
        examples = next(batches[current])
        inputs, targets = batch_inputs(processor, examples, size=size, rng=rng, shuffle_prob=config.shuffle_prob)
        yield current, inputs, targets


class QuestionBatches(torch.utils.data.IterableDataset):
    """``question_batches`` in DataLoader workers: worker w of n opens ``source(worker=w, workers=n)`` for each
    task (its own share of the examples) and draws task mix and option orders from its own seeded rng."""

    def __init__(self, processor, sources: dict[str, StreamSource], *, task: str | None, config: TrainConfig,
                 size: int):
        self.processor, self.sources, self.task, self.config, self.size = processor, sources, task, config, size

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        torch.set_num_threads(1)
        streams = {t: source(worker=worker, workers=workers) for t, source in self.sources.items()}
        rng = random.Random(f"{self.config.seed}:{self.task}:worker{worker}/{workers}")
        return question_batches(self.processor, streams, task=self.task, config=self.config, size=self.size,
                                rng=rng)


def _worker_loader(processor, sources: dict[str, StreamSource], *, task: str | None, config: TrainConfig,
                   size: int, device: torch.device) -> torch.utils.data.DataLoader:
    import multiprocessing

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the workers are forked after the tokenizer ran
    # fork: the stream sources are closures (not picklable), and the workers start in a fraction of a second.
    context = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    return torch.utils.data.DataLoader(
        QuestionBatches(processor, sources, task=task, config=config, size=size), batch_size=None,
        num_workers=config.data_workers, prefetch_factor=max(1, config.prefetch),
        pin_memory=device.type == "cuda", multiprocessing_context=context)


def train_stage(model, processor, letter_ids, sources: dict[str, StreamSource], *, task: str | None,
                steps: int, minutes: float, lr: float, config: TrainConfig, size: int,
                on_eval: Callable[[int, float], None] | None = None, step_offset: int = 0,
                device: torch.device | str | None = None) -> int:
    """Train ``model`` (task None: the base on MV+EV merged; else that task's adapter) on ``device`` with batches
    from ``sources`` (rendered in config.data_workers processes, or here when 0). Returns steps done."""
    device = torch.device(device) if device is not None else resolve_device(config.device)
    model.to(device)
    rng = random.Random(f"{config.seed}:{task}")
    params = _trainable(model, task)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    if config.data_workers > 0:
        loader = _worker_loader(processor, sources, task=task, config=config, size=size, device=device)
        batches = iter(loader)
    else:
        batches = question_batches(processor, {t: source() for t, source in sources.items()}, task=task,
                                   config=config, size=size, rng=rng)
    image_token = _image_token(processor)
    start = time.monotonic()
    deadline = start + minutes * 60 if minutes else math.inf
    total = steps or 10**9
    step = 0
    loss_avg = None
    waited = evaluating = 0.0
    try:
        while step < total and time.monotonic() < deadline:
            before = time.monotonic()
            current, inputs, targets = next(batches)
            waited += time.monotonic() - before
            if device.type != "cpu":
                inputs, targets = _to(inputs, device), targets.to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total, config, lr,
                                     (time.monotonic() - start) / (minutes * 60) if minutes else 0.0)
            model.train()
            logits = option_logits(model, inputs, letter_ids, len(options_for(current)), image_token_id=image_token)
            loss = torch.nn.functional.cross_entropy(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            value = float(loss.detach())
            loss_avg = value if loss_avg is None else 0.98 * loss_avg + 0.02 * value
            step += 1
            if step % 25 == 0:
                log.info("stage %s step %d loss %.4f (avg %.4f) lr %.2e", task or "base", step, value, loss_avg,
                         optimizer.param_groups[0]["lr"])
            if on_eval is not None and config.eval_every and step % config.eval_every == 0:
                before = time.monotonic()
                on_eval(step_offset + step, loss_avg)
                evaluating += time.monotonic() - before
    finally:
        del batches  # shuts the data workers down
    elapsed = time.monotonic() - start
    training = max(1e-9, elapsed - evaluating)
    log.info("stage %s: %d steps in %.1f s (%.1f s evaluating): %.2f steps/s, %.0f examples/s, %.0f%% of the "
             "training time waiting for data (%d data workers, %s)", task or "base", step, elapsed, evaluating,
             step / training, step * config.batch_size / training, 100 * waited / training, config.data_workers,
             device)
    for param in model.parameters():
        param.requires_grad = False
    return step


def _curve_row(step: int, stage: str, loss: float | None, evaluation: dict, elapsed: float) -> dict:
    row = {"step": step, "stage": stage, "minutes": round(elapsed / 60, 1),
           "train_loss": None if loss is None else round(loss, 4)}
    for task in TASKS:
        metrics = evaluation["metrics"].get(task)
        if metrics:
            row[f"{task}_accuracy"] = round(metrics["accuracy"], 4)
            row[f"{task}_kappa"] = round(metrics["cohen_kappa"], 4)
            row[f"{task}_auc"] = round(metrics.get("accept_auc", float("nan")), 4)
            row.update({f"{name}_threshold": t["threshold"] for name, t in metrics["thresholds"].items()})
    return row


def _selection_score(evaluation: dict) -> float:
    """Which evaluation's checkpoint is kept: the mean held-out accept AUC over the tasks (accuracy where the AUC
    is undefined). AUC ranks items as thresholds use them, and a training stream re-balanced to more accepts
    shifts the prior (hence accuracy at argmax) but not the ranking."""
    scores = []
    for metrics in evaluation["metrics"].values():
        auc = metrics.get("accept_auc", float("nan"))
        scores.append(metrics["accuracy"] if auc is None or math.isnan(auc) else auc)
    return float(np.mean(scores or [0.0]))


def run_training(verifier: Verifier, streams: dict[str, StreamSource], heldout: Heldout,
                 out: str | Path, *, config: TrainConfig, data: dict, name: str = "verifier") -> dict:
    """Train ``verifier`` in place (base stage, then each adapter) on config.device, evaluating every
    ``eval_every`` steps and keeping the best checkpoint (mean held-out accept AUC) in ``out``. ``streams`` maps a
    task to a source of fresh example streams, ``source(worker=0, workers=1)`` (see the module docstring).
    Returns the final manifest."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    processor, letter_ids, size = verifier.processor, verifier.letter_ids, verifier.render_size
    model = verifier.model
    device = resolve_device(config.device)
    model.to(device)
    verifier.device = str(device)
    started = time.monotonic()
    curve: list[dict] = []
    best = {"score": -1.0, "manifest": None}
    examples_seen = {"steps": 0}

    def checkpoint(step: int, loss: float | None, stage: str) -> None:
        evaluation = evaluate(model, processor, letter_ids, heldout, size=size, config=config, device=device)
        row = _curve_row(step, stage, loss, evaluation, time.monotonic() - started)
        curve.append(row)
        log.info("eval %s", json.dumps(row))
        score = _selection_score(evaluation)
        if score < best["score"]:
            return
        best["score"] = score
        manifest = {
            "name": name,
            "temperature": evaluation["temperature"],
            "thresholds": evaluation["thresholds"],
            "with_sam3": evaluation["with_sam3"],
            "target_precision": config.target_precision,
            "drop_precision": config.drop_precision,
            "metrics": evaluation["metrics"],
            "training": {"config": asdict(config), "data": data, "steps": step, "stage": stage,
                         "batch_size": config.batch_size, "examples_seen": step * config.batch_size,
                         "minutes": round((time.monotonic() - started) / 60, 1)},
            "learning_curve": curve,
            "template_versions": dict(TEMPLATE_VERSIONS),
            "render_size": size,
        }
        manifest.pop("model_version", None)
        verifier.manifest = {k: v for k, v in verifier.manifest.items() if k != "model_version"}
        best["manifest"] = save_verifier(verifier, out, manifest=manifest)
        write_readme(out, best["manifest"])

    base_model = model.get_base_model() if hasattr(model, "get_base_model") else model
    done = 0
    if config.base_steps or config.base_minutes:
        base_streams = {t: streams[t] for t in TASKS if t in streams}
        # The adapters must not be active while the base trains: disable them (B = 0 makes them identity anyway).
        with model.disable_adapter():
            done = train_stage(base_model, processor, letter_ids, base_streams, task=None,
                               steps=config.base_steps, minutes=config.base_minutes, lr=config.lr, config=config,
                               size=size, on_eval=lambda s, l: checkpoint(s, l, "base"), device=device)
    if config.adapter_steps or config.adapter_minutes:
        for task in TASKS:
            if task not in streams:
                continue
            model.set_adapter(task)
            n = train_stage(model, processor, letter_ids, {task: streams[task]}, task=task,
                            steps=config.adapter_steps, minutes=config.adapter_minutes, lr=config.adapter_lr,
                            config=config, size=size, step_offset=done, device=device)
            done += n
        model.set_adapter("mv")
    checkpoint(done, None, "final")
    examples_seen["steps"] = done
    return best["manifest"]


def _sources(data: dict) -> str:
    # Versions made before several example files could be given name one "source".
    return " + ".join(source["path"] for source in data.get("sources") or []) or str(data.get("source"))


def write_readme(folder: str | Path, manifest: dict) -> None:
    """README.md next to the checkpoint: what it is, how it was made, the learning curve and the report."""
    folder = Path(folder)
    training = manifest.get("training", {})
    init = (training.get("data") or {}).get("init") or {}
    start = f"from `{init.get('model_version')}`" if init else "from scratch"
    lines = [f"# {manifest.get('name', 'verifier')} — {manifest['model_version']}", "",
             f"Tiny Llama 3.2 Vision architecture (`MllamaForConditionalGeneration`) trained {start} on this CPU",
             "with `python -m verifiers.train` (see `training` in manifest.json for the exact config and data).",
             "Labels are SIMULATED-annotator verdicts on the synthetic shapes world, not human data.", ""]
    calibrated = manifest.get("calibration")
    recalibrated = [f"- recalibrated with `python -m verifiers.calibrate` from `{calibrated['from_version']}` on "
                    f"{_sources(calibrated['data'])} (same weights)"] if calibrated else []
    lines += [f"- code version `{manifest.get('code_version')}`, templates {manifest.get('template_versions')}",
              f"- steps {training.get('steps')} (batch {training.get('batch_size')}), "
              f"{training.get('minutes')} min, stage `{training.get('stage')}`",
              f"- temperature {manifest.get('temperature')}",
              *recalibrated,
              f"- auto-accept thresholds at target precision {manifest.get('target_precision')}: "
              f"{manifest.get('thresholds')} (None = nothing is auto-accepted)",
              *([f"- these EV thresholds apply to P(claim) from the verifier's P(accept) and SAM 3's witnesses "
                 f"(logistic weights): {manifest['with_sam3']}"] if manifest.get("with_sam3") else []), "",
              "## Learning curve (held-out test share; accuracy vs the annotator's verdicts)", "",
              "| step | stage | min | train loss | MV acc | MV κ | MV AUC | EV acc | EV κ | EV AUC |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for row in manifest.get("learning_curve", []):
        lines.append("| {step} | {stage} | {minutes} | {train_loss} | {mv_accuracy} | {mv_kappa} | {mv_auc} | "
                     "{ev_accuracy} | {ev_kappa} | {ev_auc} |".format(**{**{k: "" for k in (
                         "mv_accuracy", "mv_kappa", "mv_auc", "ev_accuracy", "ev_kappa", "ev_auc")}, **row}))
    for task, metrics in (manifest.get("metrics") or {}).items():
        lines += ["", f"## {task.upper()} report (n = {metrics['n']})", "",
                  f"accuracy {metrics['accuracy']:.3f}, Cohen's κ {metrics['cohen_kappa']:.3f}, "
                  f"accept AUC {metrics.get('accept_auc', float('nan')):.3f}, NLL {metrics['nll']:.3f}; "
                  f"calibrated on {metrics.get('calibration_labels')}; thresholds: {metrics.get('thresholds')}", "",
                  f"accuracy against the error-free answer by kind: {metrics.get('accuracy_vs_truth_by_kind')}", "",
                  "precision of auto-accepting the top share by P(accept): " + ", ".join(
                      f"{r['coverage']:.0%}: {r['precision']:.3f}" for r in metrics["precision_at_coverage"])]
    (folder / "README.md").write_text("\n".join(lines) + "\n")
