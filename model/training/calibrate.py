"""Score calibration of a trained SAM 3: fit how its scores map to the evaluator's 0.5 cut, fold it into the weights.

    python -m model.training.calibrate --checkpoint CKPT --out DIR [--scenes 150]          # synthetic sets
    python -m model.training.calibrate --checkpoint CKPT --out DIR --gold VAL.json --test-gold TEST.json
    python -m model.training.calibrate --checkpoint CALIBRATED --out DIR --undo   # to train on from raw scores

SAM 3 keeps an instance when score = sigmoid(query logit) x sigmoid(presence logit) >= 0.5 (data-engine.md §8).
A model trained briefly ranks better than it calibrates: its presence and query logits sit too low, so most
right answers stay under the cut (sam3-ed9d46c4e53f9772 uncalibrated: top-score AUC 0.78, median top score of
positives 0.25, so 4 of 99 held-out positive pairs reached it).
This fits, on a gold set used for nothing else (by default a synthetic world of seed 9, which is neither the
training run's selection seed nor its test seed; or the held-out split of a snapshot, ``--gold``), the map

    presence logit -> a_p * presence logit + b_p        query logit -> a_q * query logit

that maximises cgF1, and folds it into the last presence layer and the query-side text projection, so the
calibrated checkpoint is an ordinary checkpoint (a new version, whose manifest records the map and its parent).
A bias on the query logit cannot be folded (it is a dot product), so the family is these three numbers.

The search is exact and fast: both maps are increasing, so within a pair the kept instances are always a prefix
of the queries in score order; the evaluator's matches are computed once per prefix (``model.eval`` functions)
and every candidate map is scored by the official summary, as ``model.eval`` would score its predictions.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.eval.cgf1 import (
    IOU_THRESHOLDS,
    SCORE_THRESHOLD,
    GroundTruth,
    evaluated_pairs,
    image_level_outcomes,
    local_f1,
    match_counts,
    summary_metrics,
)
from model.media import sha256_of
from model.sam3.build import MANIFEST_NAME, CheckpointError, resolve_model, save_checkpoint, write_manifest
from model.sam3.predictor import ConceptPredictor
from model.synthetic import REFERENCE_SIZE, generate_world
from model.training.evaluate import evaluate_predictor
from model.training.trainer import learning_curve_markdown

log = logging.getLogger("model.training.calibrate")

CALIBRATION_FORMAT = "dataengine.sam3-score-calibration.v1"
# The search grid: scales from 1/2 to 8, presence bias from -2 to +8 logits (the fitted point is reported).
SCALES = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
PRESENCE_BIASES = tuple(np.round(np.arange(-2.0, 8.0001, 0.25), 2))


@dataclass(frozen=True)
class ScoreCalibration:
    presence_scale: float = 1.0
    presence_bias: float = 0.0
    query_scale: float = 1.0

    def __post_init__(self):
        if self.presence_scale <= 0 or self.query_scale <= 0:
            raise ValueError("calibration scales must be > 0 (an increasing map keeps the ranking)")

    def distance_from_identity(self) -> float:
        return abs(np.log(self.presence_scale)) + abs(self.presence_bias) + abs(np.log(self.query_scale))


@dataclass
class PairCandidates:
    """One evaluated pair: its logits (queries in score order) and the evaluator's TP counts per kept prefix.

    ``tp_by_prefix[k]`` is the TP count at each IoU threshold when the first k queries are kept (shape K+1 x 10).
    """

    image_id: object
    presence_logit: float
    query_logits: np.ndarray
    tp_by_prefix: np.ndarray
    num_gt: int


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return float(np.log(p) - np.log1p(-p))


def collect_candidates(predictor: ConceptPredictor, gold: dict, images_dir: str | Path, *,
                       max_instances: int = 6) -> list[PairCandidates]:
    """Every evaluated pair of ``gold`` with its top ``max_instances`` queries (any score), as the training
    evaluation predicts them (``model.training.evaluate.predict_gold``)."""
    truth = GroundTruth.load(gold)
    entries = {entry["id"]: entry for entry in gold["images"]}
    ids = evaluated_pairs([truth])
    by_file: dict[str, list] = {}
    for image_id in ids:
        by_file.setdefault(entries[image_id]["file_name"], []).append(image_id)
    candidates = []
    for file_name, pair_ids in sorted(by_file.items()):
        with Image.open(Path(images_dir) / file_name) as image:
            proposals = predictor.propose(image.convert("RGB"), [entries[i]["text_input"] for i in pair_ids],
                                          score_threshold=-1.0, max_instances=max_instances)
        for image_id, proposal in zip(pair_ids, proposals):
            gt_masks = truth.instance_masks(image_id)
            masks = [truth.to_rle(instance.rle, image_id) for instance in proposal.instances]
            tp = np.stack([match_counts(masks[:k], gt_masks) for k in range(len(masks) + 1)])
            candidates.append(PairCandidates(
                image_id=image_id, presence_logit=_logit(proposal.presence_score),
                query_logits=np.array([_logit(instance.query_score) for instance in proposal.instances]),
                tp_by_prefix=tp, num_gt=len(gt_masks)))
    return candidates


class CandidateTable:
    """The candidates as padded arrays, so one calibration is scored with a few vector operations."""

    def __init__(self, pairs: list[PairCandidates]):
        if not pairs:
            raise ValueError("no evaluated pairs to calibrate on")
        width = max(len(p.query_logits) for p in pairs)
        self.queries = np.full((len(pairs), width), -np.inf)
        self.tp = np.zeros((len(pairs), width + 1, len(IOU_THRESHOLDS)), dtype=np.int64)
        for i, pair in enumerate(pairs):
            n = len(pair.query_logits)
            self.queries[i, :n] = pair.query_logits
            self.tp[i, :n + 1] = pair.tp_by_prefix
            self.tp[i, n + 1:] = pair.tp_by_prefix[-1]
        self.presence = np.array([p.presence_logit for p in pairs])
        self.num_gt = np.array([p.num_gt for p in pairs], dtype=np.int64)

    def kept(self, calibration: ScoreCalibration) -> np.ndarray:
        """Instances per pair whose calibrated score reaches the evaluator's cut."""
        presence = 1 / (1 + np.exp(-(calibration.presence_scale * self.presence + calibration.presence_bias)))
        with np.errstate(over="ignore"):
            queries = 1 / (1 + np.exp(-calibration.query_scale * self.queries))
        return ((queries * presence[:, None]) >= SCORE_THRESHOLD).sum(axis=1)

    def metrics(self, calibration: ScoreCalibration) -> dict[str, float]:
        """The official summary metrics (one GT file) of the predictions this calibration keeps."""
        num_pred = self.kept(calibration)
        tp = self.tp[np.arange(len(num_pred)), num_pred]
        fp, fn = num_pred[:, None] - tp, self.num_gt[:, None] - tp
        outcome = image_level_outcomes(num_pred, self.num_gt)
        metrics, _ = summary_metrics(outcome, tp, fp, fn, local_f1(tp, fp, fn))
        return metrics


def fit_calibration(pairs: list[PairCandidates], *, scales=SCALES,
                    presence_biases=PRESENCE_BIASES) -> tuple[ScoreCalibration, dict, dict]:
    """(best calibration, its metrics, the identity's metrics): the grid point with the highest cgF1, ties
    going to the map closest to the identity (the identity is always on the grid)."""
    table = CandidateTable(pairs)
    best = ScoreCalibration()
    best_metrics = identity_metrics = table.metrics(best)
    for a_p, b_p, a_q in itertools.product(scales, presence_biases, scales):
        candidate = ScoreCalibration(float(a_p), float(b_p), float(a_q))
        metrics = table.metrics(candidate)
        better = metrics["cgF1"] > best_metrics["cgF1"] + 1e-12
        tie = abs(metrics["cgF1"] - best_metrics["cgF1"]) <= 1e-12
        if better or (tie and candidate.distance_from_identity() < best.distance_from_identity()):
            best, best_metrics = candidate, metrics
    return best, best_metrics, identity_metrics


@torch.no_grad()
def fold_calibration(model, calibration: ScoreCalibration) -> None:
    """Fold the map into ``model``'s weights (in place): the presence head's last linear layer and the text
    projection of the query scoring (its logit is a dot product with the projected text, scaled)."""
    head = model.detr_decoder.presence_head
    last = head.layer3 if head.layer3 is not None else head.layer2
    last.weight.mul_(calibration.presence_scale)
    last.bias.mul_(calibration.presence_scale).add_(calibration.presence_bias)
    projection = model.dot_product_scoring.text_proj
    projection.weight.mul_(calibration.query_scale)
    projection.bias.mul_(calibration.query_scale)


def inverse(calibration: ScoreCalibration) -> ScoreCalibration:
    """The map that undoes ``calibration`` (presence: (l - b) / a; query: l / a)."""
    return ScoreCalibration(1 / calibration.presence_scale, -calibration.presence_bias / calibration.presence_scale,
                            1 / calibration.query_scale)


def uncalibrate_checkpoint(uri: str, out: str | Path, *, work_dir: str | Path) -> dict:
    """Undo a calibrated checkpoint's map and save the result at ``out``: the parent's scores up to float rounding.

    Training should go on from raw scores: a folded presence scale of 6 pushes logits into Sam3Model's +-10 clamp,
    where they get no gradient. The manifest names the checkpoint it came from and the map undone."""
    loaded = resolve_model(uri, cache_dir=Path(work_dir) / "cache")
    stored = loaded.manifest.get("score_calibration")
    if not stored:
        raise ValueError(f"{uri} is not score-calibrated: nothing to undo")
    undo = inverse(ScoreCalibration(stored["presence_scale"], stored["presence_bias"], stored["query_scale"]))
    with torch.no_grad():
        fold_calibration(loaded.model, undo)
    skip = ("files", "created_at", "format", "model_version", "score_calibration", "test_metrics",
            "test_metrics_before_calibration")
    manifest = {k: v for k, v in loaded.manifest.items() if k not in skip}
    manifest["score_calibration_undone"] = {"from": {"model_version": loaded.version, "uri": uri}, **asdict(undo),
                                            "calibrated_from": stored.get("calibrated_from")}
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    save_checkpoint(loaded.model, loaded.processor, out, manifest=manifest)
    return json.loads((out / MANIFEST_NAME).read_text())


@dataclass(frozen=True)
class GoldSet:
    """An SA-Co gold file, the folder its ``file_name`` entries are in, and what it is (for the manifest)."""

    gold: Path
    images: Path
    about: dict


def synthetic_set(folder: Path, *, seed: int, scenes: int, size: int, domain: str) -> GoldSet:
    """A synthetic gold set (generated once into ``folder``); scene i depends on (seed, i) only, so a larger set
    of the same seed contains the smaller one."""
    if not (folder / "gold.json").is_file():
        generate_world(folder, seed=seed, n_images=scenes, size=size, domain=domain)
    return GoldSet(folder / "gold.json", folder, {"kind": "synthetic", "domain": domain, "seed": seed,
                                                   "scenes": scenes})


def gold_file_set(gold: Path, images: Path | None = None) -> GoldSet:
    """A gold file of the user's (e.g. the held-out split of an SA-Co snapshot)."""
    return GoldSet(Path(gold), Path(images or Path(gold).parent),
                   {"kind": "gold", "path": str(gold), "sha256": sha256_of(Path(gold))})


def calibrate_checkpoint(uri: str, out: str | Path, *, work_dir: str | Path, fit: GoldSet | None = None,
                         test: GoldSet | None = None, scenes: int = 150, device: str = "cpu") -> dict:
    """Fit on ``fit``, fold, save the calibrated checkpoint at ``out``; return its manifest.

    By default both sets are synthetic, ``scenes`` scenes of the checkpoint's domain and render size: ``fit`` a
    world used for nothing else (seed 9), ``test`` the training run's test world (seed 8), whose first
    ``eval_scenes`` scenes are the run's own test set. ``fit`` must never be the set the numbers are reported on."""
    work_dir = Path(work_dir)
    loaded = resolve_model(uri, cache_dir=work_dir / "cache")
    train_config = loaded.manifest.get("train_config", {})
    size, domain = train_config.get("render_size") or REFERENCE_SIZE, train_config.get("domain") or "shapes"
    fit = fit or synthetic_set(work_dir / f"fit-{domain}-9-{scenes}", seed=9, scenes=scenes, size=size, domain=domain)
    test = test or synthetic_set(work_dir / f"test-{domain}-8-{scenes}", seed=8, scenes=scenes, size=size,
                                 domain=domain)
    if fit.gold.resolve() == test.gold.resolve():
        raise ValueError("the calibration must be fitted on another set than the one it is tested on")

    predictor = ConceptPredictor(loaded, device=device)
    pairs = collect_candidates(predictor, json.loads(fit.gold.read_text()), fit.images)
    calibration, fitted, before = fit_calibration(pairs)
    log.info("fitted %s on %d pairs: cgF1 %.2f -> %.2f", calibration, len(pairs), 100 * before["cgF1"],
             100 * fitted["cgF1"])
    test_before = evaluate_predictor(predictor, test.gold, test.images)
    fold_calibration(loaded.model, calibration)
    test_after = evaluate_predictor(ConceptPredictor(loaded, device=device), test.gold, test.images)

    # The training record (base, data, learning curve, the code that trained it) travels on unchanged.
    manifest = {k: v for k, v in loaded.manifest.items() if k not in ("files", "created_at", "format", "model_version")}
    manifest.setdefault("train_code_version", loaded.manifest.get("code_version"))
    manifest.update(
        score_calibration={
            "format": CALIBRATION_FORMAT, **asdict(calibration),
            "calibrated_from": {"model_version": loaded.version, "uri": uri},
            "fitted_on": {**fit.about, "n_pairs": len(pairs)},
            "objective": "cgF1 (official summary, one GT file, top 6 queries per pair)",
            "fit_metrics_before": _summary(before), "fit_metrics_after": _summary(fitted),
            "tested_on": test.about,
        },
        test_metrics_before_calibration=test_before, test_metrics=test_after,
    )
    staging = work_dir / "calibrated"
    if staging.exists():
        shutil.rmtree(staging)
    save_checkpoint(loaded.model, loaded.processor, staging, manifest=manifest)
    # The README names the new version, which the weights decide; the manifest is rewritten to list it.
    written = json.loads((staging / MANIFEST_NAME).read_text())
    (staging / "README.md").write_text(learning_curve_markdown(written) + calibration_markdown(written))
    manifest = write_manifest(staging, {k: v for k, v in written.items() if k not in ("files", "created_at")},
                              config=loaded.model.config)
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(staging, out)
    return manifest


def _summary(metrics: dict) -> dict:
    return {"cgF1": 100 * metrics["cgF1"], "pmF1": metrics["positive_micro_F1"], "IL_MCC": metrics["IL_MCC"]}


def _describe(about: dict) -> str:
    if about.get("kind") == "synthetic":
        return f"synthetic world (domain {about['domain']}, seed {about['seed']}, {about['scenes']} scenes)"
    return f"`{about.get('path')}`"


def calibration_markdown(manifest: dict) -> str:
    cal = manifest["score_calibration"]
    before, after = manifest["test_metrics_before_calibration"], manifest["test_metrics"]
    lines = [
        "", "## Score calibration", "",
        f"Calibrated from `{cal['calibrated_from']['model_version']}` by `python -m model.training.calibrate` "
        f"(code {manifest.get('code_version')}): presence logit × {cal['presence_scale']:g} "
        f"{cal['presence_bias']:+g}, query logit × {cal['query_scale']:g}, folded into the weights. Fitted on "
        f"{cal['fitted_on']['n_pairs']} pairs of a {_describe(cal['fitted_on'])} used for nothing else (cgF1 "
        f"{cal['fit_metrics_before']['cgF1']:.2f} → {cal['fit_metrics_after']['cgF1']:.2f} there); tested on "
        f"the {_describe(cal['tested_on'])}:",
        "", "| test set | pairs | cgF1 | pmF1 | IL_MCC | IL_TP | IL_FP | top-score AUC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in (("before calibration", before), ("after calibration", after)):
        lines.append(f"| {name} | {m['n_pairs']} | {m['cgF1']:.2f} | {m['pmF1']:.3f} | {m['IL_MCC']:.3f} | "
                     f"{m['IL_TP']} | {m['IL_FP']} | {m['top_score_auc']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.training.calibrate", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder or s3:// URI to calibrate")
    parser.add_argument("--out", required=True, type=Path, help="folder for the calibrated checkpoint")
    parser.add_argument("--gold", type=Path, help="fit on this SA-Co gold file (default: a synthetic world, seed 9)")
    parser.add_argument("--images", type=Path, help="folder of --gold's images (default: its folder)")
    parser.add_argument("--test-gold", type=Path, help="report on this gold file (default: synthetic, seed 8)")
    parser.add_argument("--test-images", type=Path, help="folder of --test-gold's images (default: its folder)")
    parser.add_argument("--scenes", type=int, default=150, help="scenes in each synthetic set")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work-dir", type=Path, default=None, help="where generated sets and staging are kept")
    parser.add_argument("--undo", action="store_true", help="undo the checkpoint's calibration instead (to train on)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="sam3-calibrate-"))
    try:
        if args.undo:
            manifest = uncalibrate_checkpoint(args.checkpoint, args.out, work_dir=work_dir)
            print(json.dumps({"model_version": manifest["model_version"], "out": str(args.out),
                              "score_calibration_undone": manifest["score_calibration_undone"]}, indent=2))
            return 0
        fit = gold_file_set(args.gold, args.images) if args.gold else None
        test = gold_file_set(args.test_gold, args.test_images) if args.test_gold else None
        manifest = calibrate_checkpoint(args.checkpoint, args.out, work_dir=work_dir, fit=fit, test=test,
                                        scenes=args.scenes, device=args.device)
    except (OSError, ValueError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"model_version": manifest["model_version"], "out": str(args.out),
                      "score_calibration": manifest["score_calibration"],
                      "test_metrics": manifest.get("test_metrics")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
