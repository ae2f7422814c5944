"""Benchmark: Phase 2 routing (AI verifiers first) against Phase 1 (humans verify everything), same world.

    python -m tests.bench.bench_routing                     # 24 images (~170 datapoints per arm)
    python -m tests.bench.bench_routing --quick             # 4 images: a smoke run
    python -m tests.bench.bench_routing --verifier PATH --sam3 PATH --images N --seed S [--sqlite]

Writes bench-results/routing.json (routing-quick.json with --quick). Everything human in it is SIMULATED: the
simulated annotator (docs/simulated-annotator.md) answers from the synthetic world's exact ground truth with its
seeded error model, and its seconds come from its time model, calibrated to the paper's all-human engine.

One synthetic world (``model.synthetic``: N scenes, every phrase the world asks of each scene, hard negatives
included) is ingested into two projects of one fresh database (PostgreSQL by default, like the other
benchmarks; ``--sqlite`` for a file), with the same SAM 3 checkpoint (``--sam3``) and the same project config
(score threshold 0 and the top 3 proposals per phrase, as in the demo, so that there are masks to verify, their masks
drawn again by the click tracker), so
both arms start from the same datapoints and the same proposals:

- **Phase 1** (``phase=1``): a human MV task per proposed mask, a human EV task per datapoint, a correction where EV
  rejects (``annotation.services``).
- **Phase 2** (``phase=2``, the ``--verifier`` checkpoint registered and promoted): ``verifiers.verify_datapoint.v1``
  scores every datapoint and ``annotation.store_verdicts.v1`` routes it (``annotation.verifying``): auto-accept
  only at the thresholds stored with the verifier for the project's target precision (0.98) and with no
  failure sign, a sampled ``audit_rate`` (5%) of those to human review, everything else to a human check (MV,
  then the verifier's EV on the masks the human accepted where its thresholds allow, else a human EV) or
  correction.

Proposals and verification run through the real services with eager Celery tasks (no broker). The simulated
annotators then work both projects through the public HTTP API (an in-process threaded WSGI server), the same
endpoints a browser uses, with identical settings and seed, so the same question gets the same answer in both
arms.

Measured per arm, from the database and the SA-Co document of accepted data (``sa_co_document``):

- **human seconds**: the ``seconds`` of every human verdict (MV, EV, correction, review), i.e. the time model's
  charge for each submitted task; AI verification costs no human time (its wall time is reported apart). The
  annotators' own logs must add up to the same total (checked).
- **accepted masks**: accepted masks of accepted datapoints (what a snapshot exports); masks per human-hour =
  accepted masks / (human seconds / 3600).
- **escaped errors** (docs/simulated-annotator.md §5, ``simulated_annotator.report.escaped_errors``): an accepted
  mask with IoU < 0.5 against every true instance, an accepted "not present" that has instances, or a datapoint
  marked exhaustive that misses an instance. ``escaped_error_rate_*`` = accepted datapoints carrying at least one
  of these / accepted datapoints (per-1,000 figures are in ``arms``).
- **human share**: datapoints with at least one human task (MV, EV, correction or review) / datapoints.
- **AI precision**: audited = confirmed reviews / reviews (``verifier_precision``; null without a review); against
  the ground truth = auto-accepted datapoints that a perfect reviewer would confirm / auto-accepted datapoints
  (judged right after routing, before any human touched them); ``ai_exhaustivity_after_check`` in the Phase 2
  arm counts the datapoints the verifier's EV settled after a human check and how many the ground truth confirms,
  and why the others got a human EV (the claim whose threshold it missed; not asked: no threshold, failure signs).

Goal (the issue, after the paper): ``phase2_over_phase1_masks_per_human_hour`` >= 2 at
``escaped_error_rate_phase2`` <= ``escaped_error_rate_phase1``; ``goal_met`` says whether this run reached it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.bench.harness import BenchDatabase, cpu_calibration_ms, free_port, setup_django_in_process
from tests.bench.report import git_sha, write_report

ROOT = Path(__file__).resolve().parents[2]
NAME = "routing"
DEFAULT_SAM3 = ROOT / "checkpoints" / "sam3-tiny"
DEFAULT_VERIFIER = ROOT / "checkpoints" / "verifier-tiny"
# The demo's proposal settings: the tiny SAM 3 scores every query far below 0.5, so keep its top 3 per phrase, each
# mask drawn again by the click tracker (model.sam3.refine).
PROPOSAL_CONFIG = {"score_threshold": 0.0, "max_instances": 3, "refine_masks": True}
ANNOTATORS = ("annotator1", "annotator2")


# ----------------------------------------------------------------------------------------------
# Set-up
# ----------------------------------------------------------------------------------------------


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / "manifest.json"
    if not path.exists():
        raise SystemExit(f"{folder}: no manifest.json (expected a checkpoint folder)")
    return json.loads(path.read_text())


def checkpoint_info(folder: Path, manifest: dict) -> dict:
    keys = ("model_version", "name", "code_version", "created_at", "config_hash", "target_precision", "thresholds",
            "absence_with_sam3", "with_sam3", "format")
    return {"path": str(folder), **{k: manifest[k] for k in keys if k in manifest}}


def make_world(out: Path, seed: int, n_images: int) -> Path:
    from model.synthetic import generate_world

    generate_world(out, seed=seed, n_images=n_images)
    return out / "gold.json"


def new_arm_project(phase: int, *, gold_path: Path, users: dict, sam3, verifier, audit_rate: float | None):
    """A project of ``phase`` holding the world's images and every (image, phrase) pair of gold.json."""
    from dataengine.accounts.models import Role
    from dataengine.accounts.services import add_member, create_project
    from dataengine.concepts.models import DatapointSource
    from dataengine.concepts.services import create_datapoints
    from dataengine.engine.services import promote_model_version
    from dataengine.media.services import ingest_bytes

    config = dict(PROPOSAL_CONFIG)
    if audit_rate is not None:
        config["audit_rate"] = audit_rate
    project = create_project(name=f"bench routing: phase {phase}", creator=users["lead"], phase=phase, config=config,
                             description="Routing benchmark; human work by SIMULATED annotators.")
    add_member(project, users["lead"], Role.DATA_LEAD)
    for name in ANNOTATORS:
        add_member(project, users[name], Role.REVIEWER)  # reviewers may lease every kind, review included
    promote_model_version(project, sam3)
    if phase >= 2:
        promote_model_version(project, verifier)
    document = json.loads(gold_path.read_text())
    media = {}
    for name in sorted({entry["file_name"] for entry in document["images"]}):
        media[name], _ = ingest_bytes(project, name=name, data=(gold_path.parent / name).read_bytes())
    pairs: dict[str, list] = {}
    for entry in document["images"]:
        hard = entry.get("phrase_kind") == "hard_negative"
        source = DatapointSource.HARD_NEGATIVE if hard else DatapointSource.MANUAL
        pairs.setdefault(source, []).append((media[entry["file_name"]], entry["text_input"]))
    for source, group in pairs.items():
        create_datapoints(project, group, source=source)
    project.refresh_from_db()
    return project


# ----------------------------------------------------------------------------------------------
# One arm
# ----------------------------------------------------------------------------------------------


def ai_routing(project, ground_truth, annotator_config) -> dict:
    """What the AI verifiers decided, right after routing and before any human: counts and true precision."""
    from dataengine.annotation.models import HumanTask, TaskKind
    from dataengine.concepts.models import Datapoint, DatapointState

    datapoints = Datapoint.objects.filter(project=project, is_gold=False).select_related("media", "concept")
    states = Counter(datapoints.values_list("state", flat=True))
    auto = list(datapoints.filter(auto_accepted=True))
    right, judged = right_by_truth(auto, ground_truth, annotator_config)
    return {
        "auto_accepted": len(auto),
        "auto_accepted_right_by_truth": right,
        "ai_precision_truth": right / judged if judged else None,
        "to_correction": states.get(DatapointState.CORRECTION, 0),
        "taken_out": states.get(DatapointState.REJECTED, 0),
        "failed": states.get(DatapointState.FAILED, 0),
        "to_human_check": states.get(DatapointState.MASK_VERIFICATION, 0)
        + states.get(DatapointState.EXHAUSTIVITY_VERIFICATION, 0),
        "sampled_for_review": HumanTask.objects.filter(project=project, kind=TaskKind.REVIEW).count(),
        "states_after_routing": dict(states),
        # Why items reached a human: each routing reason without its numbers (one datapoint may have several).
        "reasons": dict(Counter(re.sub(r"[\d.]+", "#", reason.strip()).split(" (")[0]
                                for text in datapoints.exclude(reason="").values_list("reason", flat=True)
                                for reason in text.split(";"))),
    }


def right_by_truth(datapoints, ground_truth, annotator_config) -> tuple[int, int]:
    """(datapoints a perfect reviewer would confirm, datapoints the ground truth knows) among ``datapoints``."""
    from dataengine.annotation.models import Mask, MaskState
    from simulated_annotator.decisions import review_verdict

    right = judged = 0
    for dp in datapoints:
        pair = ground_truth.lookup(dp.media.sha256, dp.concept.phrase)
        if pair is None:
            continue
        masks = list(Mask.objects.filter(datapoint=dp, state=MaskState.ACCEPTED).order_by("id")
                     .values_list("rle", flat=True))
        judged += 1
        right += review_verdict(masks, pair, annotator_config)[0] == "confirm"
    return right, judged


def ai_exhaustivity_after_check(project, ground_truth, annotator_config) -> dict:
    """The verifier's EV on the masks a human check accepted: how often it was asked, how often it settled the
    datapoint, and how many of those the ground truth confirms (judged at the end, after any audit)."""
    from dataengine.annotation.models import HumanTask, TaskKind
    from dataengine.annotation.verifying import VERIFY_TASK
    from dataengine.concepts.models import Datapoint
    from dataengine.engine.models import Job

    asked = set(Job.objects.filter(project=project, task_name=VERIFY_TASK, payload__ev_only=True)
                .values_list("payload__datapoint", flat=True))
    settled = list(Datapoint.objects.filter(pk__in=asked, auto_accepted=True).select_related("media", "concept"))
    right, judged = right_by_truth(settled, ground_truth, annotator_config)
    # Why the rest went on to a human EV: the claim whose threshold it missed, or had none (then it was not asked),
    # or failure signs.
    def why(datapoints) -> dict:
        counts = Counter()
        for reason in Datapoint.objects.filter(pk__in=datapoints).values_list("reason", flat=True):
            found = re.search(r"^failure signs|^EV.* on (ev\w*)|target precision \((ev\w*)\)$", reason or "")
            counts[(found.group(1) or found.group(2) or "failure signs") if found else "other"] += 1
        return dict(counts)

    checked = set(HumanTask.objects.filter(project=project, kind=TaskKind.MASK_VERIFICATION)
                  .values_list("datapoint_id", flat=True))
    return {"asked": len(asked), "auto_accepted": len(settled), "right_by_truth": right,
            "precision_truth": right / judged if judged else None,
            "left_to_a_human_by_claim": why(asked - {d.pk for d in settled}),
            "not_asked_by_reason": why(checked - asked)}


def matched_masks(document: dict, ground_truth, cover_iou: float) -> dict:
    """Accepted masks matched one-to-one to a true instance at IoU >= cover_iou (greedy, highest IoU first), and
    duplicates: masks over cover_iou with some instance that another accepted mask already matched. Duplicates
    are not escaped errors by the instrument's definition, but they are not extra instances either."""
    from collections import defaultdict

    from model import rle as rle_lib
    from simulated_annotator.decisions import _greedy_matches
    from simulated_annotator.report import _snapshot_pair

    masks_by_entry = defaultdict(list)
    for ann in document["annotations"]:
        masks_by_entry[ann["image_id"]].append(ann["segmentation"])
    matched = duplicates = 0
    for entry in document["images"]:
        pair, masks = _snapshot_pair(entry, ground_truth), masks_by_entry.get(entry["id"], [])
        if pair is None or not masks or not pair.instances:
            continue
        ious = rle_lib.iou(masks, list(pair.instances))
        pairs = len(_greedy_matches(ious, cover_iou))
        matched += pairs
        duplicates += int((ious.max(axis=1) >= cover_iou).sum()) - pairs
    return {"matched_masks": matched, "duplicate_masks": duplicates}


def run_arm(project, *, users: dict, gold_path: Path, ground_truth, annotator_config, port: int) -> dict:
    """Propose (and, in Phase 2, verify) every datapoint, let the simulated team work, measure."""
    from django.db.models import Count, Sum
    from rest_framework.authtoken.models import Token

    from dataengine.annotation.models import HumanTask, Mask, MaskSource, TaskState, Verdict
    from dataengine.annotation.proposing import request_proposals
    from dataengine.annotation.verifying import verifier_precision
    from dataengine.concepts.models import Datapoint, DatapointState
    from dataengine.engine.exports import sa_co_document
    from dataengine.engine.models import AuditEvent, Job, JobState
    from simulated_annotator.annotator import ALL_TASK_KINDS, SimulatedAnnotator, run_team
    from simulated_annotator.report import escaped_errors, seconds_per_datapoint

    phase = project.phase
    started = time.perf_counter()
    jobs = request_proposals(project)  # eager: propose -> store (-> verify -> store verdicts in Phase 2)
    machine_s = time.perf_counter() - started
    failed = Job.objects.filter(project=project).exclude(state=JobState.DONE)
    if failed.exists():
        details = list(failed.values_list("task_name", "state", "error"))[:3]
        raise RuntimeError(f"phase {phase}: jobs did not finish: {details}")
    datapoints = Datapoint.objects.filter(project=project, is_gold=False)
    stuck = datapoints.filter(state__in=[DatapointState.PENDING, DatapointState.PROPOSING,
                                         DatapointState.AI_VERIFICATION]).count()
    if stuck:
        raise RuntimeError(f"phase {phase}: {stuck} datapoints were not routed after proposals")
    routing = ai_routing(project, ground_truth, annotator_config) if phase >= 2 else None

    team = [SimulatedAnnotator(f"http://127.0.0.1:{port}", Token.objects.get_or_create(user=users[name])[0].key,
                               project.pk, ground_truth, annotator_config, name=name) for name in ANNOTATORS]
    started = time.perf_counter()
    stats = run_team(team, kinds=ALL_TASK_KINDS, idle_rounds=2, idle_sleep=0.1)
    humans_wall_s = time.perf_counter() - started

    open_tasks = HumanTask.objects.filter(project=project, state__in=[TaskState.QUEUED, TaskState.LEASED]).count()
    unfinished = datapoints.exclude(state__in=[DatapointState.ACCEPTED, DatapointState.REJECTED,
                                               DatapointState.FAILED]).count()
    if open_tasks or unfinished:
        raise RuntimeError(f"phase {phase}: {open_tasks} open human tasks, {unfinished} unfinished datapoints "
                           "after the simulated team stopped")

    human = Verdict.objects.filter(datapoint__project=project, by_ai=False)
    seconds_by_kind = {k: float(s or 0) for k, s in human.values_list("kind").annotate(s=Sum("seconds")).order_by()}
    human_seconds = sum(seconds_by_kind.values())
    if abs(human_seconds - stats.total_seconds) > 1e-6 * max(1.0, human_seconds):
        raise RuntimeError(f"phase {phase}: verdict seconds {human_seconds} != annotator log {stats.total_seconds}")
    tasks_done = dict(HumanTask.objects.filter(project=project, state=TaskState.DONE).values_list("kind")
                      .annotate(n=Count("id")).order_by())
    n_datapoints = datapoints.count()
    reached_human = (HumanTask.objects.filter(project=project, state=TaskState.DONE).values("datapoint")
                     .distinct().count())
    states = Counter(datapoints.values_list("state", flat=True))
    labels = Counter(datapoints.filter(state=DatapointState.ACCEPTED).values_list("final_label", flat=True))

    document = sa_co_document(project)
    escaped = escaped_errors(document, ground_truth, cover_iou=annotator_config.cover_iou)
    finished = [(dp, sha, phrase) for dp, sha, phrase in datapoints.filter(
        state__in=[DatapointState.ACCEPTED, DatapointState.REJECTED]).values_list("id", "media__sha256",
                                                                                    "concept__phrase")]
    timing = seconds_per_datapoint(stats.log, ground_truth, datapoints=finished)
    accepted_masks = escaped.accepted_masks
    matching = matched_masks(document, ground_truth, annotator_config.cover_iou)
    hours = human_seconds / 3600
    # What the corrections did (the audit trail of each submitted one): where their human seconds went.
    corrections = list(AuditEvent.objects.filter(project=project, action="task.correction").values_list("data",
                                                                                                       flat=True))
    correction_actions = {action: sum(d.get(action, 0) for d in corrections)
                          for action in ("kept", "restored", "edited", "added", "deleted")}
    correction_outcomes = dict(Counter(d["outcome"] for d in corrections))
    audit = verifier_precision(project) if phase >= 2 else []
    reviewed = sum(row["reviewed"] for row in audit)
    confirmed = sum(row["confirmed"] for row in audit)
    arm = {
        "phase": phase,
        "datapoints": n_datapoints,
        "datapoints_reaching_a_human": reached_human,
        "human_share": reached_human / n_datapoints if n_datapoints else None,
        "accepted_datapoints": escaped.accepted_datapoints,
        "accepted_positive": labels.get("positive", 0),
        "accepted_negative": labels.get("negative", 0),
        "rejected_datapoints": states.get(DatapointState.REJECTED, 0),
        "failed_datapoints": states.get(DatapointState.FAILED, 0),
        "accepted_masks": accepted_masks,
        **matching,
        "true_instances_in_accepted": sum(len(p.instances) for p in (
            ground_truth.lookup(e["media_sha256"], e["text_input"]) for e in document["images"]) if p is not None),
        "matched_masks_per_human_hour": matching["matched_masks"] / hours if hours else None,
        "human_tasks": tasks_done,
        "human_seconds": human_seconds,
        "human_seconds_by_kind": seconds_by_kind,
        "correction_actions": correction_actions,
        "correction_outcomes": correction_outcomes,
        "human_seconds_per_accepted_mask": human_seconds / accepted_masks if accepted_masks else None,
        "masks_per_human_hour": accepted_masks / hours if hours else None,
        "seconds_per_datapoint": timing.as_dict(),
        "escaped": escaped.as_dict(),
        "escaped_error_rate": (escaped.datapoints_with_any_error / escaped.accepted_datapoints
                               if escaped.accepted_datapoints else 0.0),
        "annotator_mistakes": dict(stats.mistakes),
        "annotator_conflicts": stats.conflicts,
        "unknown_pairs": stats.unknown_pairs,
        "proposal_jobs": len(jobs),
        "proposed_masks": Mask.objects.filter(datapoint__project=project, source=MaskSource.MODEL).count(),
        "machine_wall_s": machine_s,
        "humans_wall_s": humans_wall_s,
    }
    if phase >= 2:
        arm["routing"] = routing
        arm["ai_exhaustivity_after_check"] = ai_exhaustivity_after_check(project, ground_truth, annotator_config)
        arm["audit"] = audit
        arm["audited"] = reviewed
        arm["audit_confirmed"] = confirmed
        arm["ai_precision_audited"] = confirmed / reviewed if reviewed else None
    return arm


# ----------------------------------------------------------------------------------------------


def ratio(a, b):
    return a / b if a is not None and b else None


def goal_met(speedup: float | None, escaped_phase1: float, escaped_phase2: float) -> bool:
    """The issue's goal, after the paper: at least 2x the masks per human-hour at no more escaped errors."""
    return bool(speedup is not None and speedup >= 2.0 and escaped_phase2 <= escaped_phase1)


def headline_figures(phase1: dict, phase2: dict) -> dict:
    """The report's top-level keys from the two arms' figures (one world's, or several worlds' pooled)."""
    speedup = ratio(phase2["masks_per_human_hour"], phase1["masks_per_human_hour"])
    return {
        "phase2_over_phase1_masks_per_human_hour": speedup,
        "escaped_error_rate_phase1": phase1["escaped_error_rate"],
        "escaped_error_rate_phase2": phase2["escaped_error_rate"],
        "human_share_phase1": phase1["human_share"],
        "human_share_phase2": phase2["human_share"],
        "ai_precision_audited": phase2["ai_precision_audited"],
        "ai_precision_truth": phase2["routing"]["ai_precision_truth"],
        "masks_per_human_hour_phase1": phase1["masks_per_human_hour"],
        "masks_per_human_hour_phase2": phase2["masks_per_human_hour"],
        "human_seconds_per_accepted_mask_phase1": phase1["human_seconds_per_accepted_mask"],
        "human_seconds_per_accepted_mask_phase2": phase2["human_seconds_per_accepted_mask"],
        "phase2_over_phase1_human_seconds": ratio(phase2["human_seconds"], phase1["human_seconds"]),
        "phase2_over_phase1_matched_masks_per_human_hour": ratio(phase2["matched_masks_per_human_hour"],
                                                                  phase1["matched_masks_per_human_hour"]),
        "duplicate_masks_phase1": phase1["duplicate_masks"],
        "duplicate_masks_phase2": phase2["duplicate_masks"],
        "datapoints": phase1["datapoints"],
        "accepted_masks_phase1": phase1["accepted_masks"],
        "accepted_masks_phase2": phase2["accepted_masks"],
        "human_seconds_phase1": phase1["human_seconds"],
        "human_seconds_phase2": phase2["human_seconds"],
        "auto_accepted_phase2": phase2["routing"]["auto_accepted"],
        "auto_accepted_after_check_phase2": phase2["ai_exhaustivity_after_check"]["auto_accepted"],
        "audited_phase2": phase2["audited"],
        "goal_met": goal_met(speedup, phase1["escaped_error_rate"], phase2["escaped_error_rate"]),
    }


def summarise(phase1: dict, phase2: dict) -> tuple[dict, list[dict]]:
    """The report's top-level keys and its table."""
    figures = headline_figures(phase1, phase2)
    rows = []
    for arm in (phase1, phase2):
        per_dp = arm["seconds_per_datapoint"]
        rows.append({
            "arm": f"phase {arm['phase']}", "datapoints": arm["datapoints"], "human share": arm["human_share"],
            "auto-accepted": arm.get("routing", {}).get("auto_accepted", 0) if arm["phase"] >= 2 else 0,
            "AI EV after check": arm.get("ai_exhaustivity_after_check", {}).get("auto_accepted", 0),
            "accepted dp": arm["accepted_datapoints"], "accepted masks": arm["accepted_masks"],
            "duplicates": arm["duplicate_masks"],
            "human s": arm["human_seconds"], "s/pos dp": per_dp["positive_mean"], "s/neg dp": per_dp["negative_mean"],
            "human s/mask": arm["human_seconds_per_accepted_mask"], "masks/human-h": arm["masks_per_human_hour"],
            "escaped rate": arm["escaped_error_rate"], "escaped/1k masks": arm["escaped"]["per_1000_masks"],
        })
    return figures, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 images (a smoke run)")
    parser.add_argument("--images", type=int, default=None, help="scenes in the world (default 24, 4 with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="world seed and simulated-annotator seed")
    parser.add_argument("--sam3", type=Path, default=DEFAULT_SAM3, help="SAM 3 checkpoint folder (the proposer)")
    parser.add_argument("--verifier", type=Path, default=DEFAULT_VERIFIER, help="verifier checkpoint folder")
    parser.add_argument("--error-rate", type=float, default=0.03, help="simulated annotator error rate (all kinds)")
    parser.add_argument("--audit-rate", type=float, default=None,
                        help="share of auto-accepted datapoints sent to review (default: the project default, 0.05)")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of a fresh PostgreSQL database")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: shared machine)")
    parser.add_argument("--name", default=None, help="report name (default routing, routing-quick with --quick)")
    args, _ = parser.parse_known_args(argv)  # `python -m tests.bench` passes every benchmark the same arguments
    n_images = args.images or (4 if args.quick else 24)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    sam3_path, verifier_path = args.sam3.resolve(), args.verifier.resolve()
    sam3_manifest, verifier_manifest = read_manifest(sam3_path), read_manifest(verifier_path)
    load_before, calibration = os.getloadavg(), cpu_calibration_ms()
    started = time.perf_counter()
    if str(ROOT / "platform") not in sys.path:
        sys.path.append(str(ROOT / "platform"))  # appended: the stdlib `platform` must win
    from simulated_annotator.annotator import SIMULATED_LABEL
    from simulated_annotator.config import AnnotatorConfig

    annotator_config = AnnotatorConfig(error_rate_mv=args.error_rate, error_rate_ev=args.error_rate,
                                       error_rate_correction=args.error_rate, seed=args.seed)

    with tempfile.TemporaryDirectory(prefix="bench-routing-") as data_dir:
        if args.sqlite:
            database, database_url = None, f"sqlite:///{data_dir}/routing.sqlite3"
        else:
            database = BenchDatabase(f"dataengine_bench_routing_{os.getpid()}").__enter__()
            database_url = database.url
        try:
            figures, rows, arms = run(args, n_images, data_dir, database_url, annotator_config, sam3_path,
                                      sam3_manifest, verifier_path, verifier_manifest)
        finally:
            from django.db import connections

            connections.close_all()
            if database is not None:
                database.__exit__(None, None, None)

    figures.update({
        "simulated": True,
        "arms": arms,
        "config": {
            "images": n_images, "world_seed": args.seed, "world": "model.synthetic shapes",
            "sam3": checkpoint_info(sam3_path, sam3_manifest),
            "verifier": checkpoint_info(verifier_path, verifier_manifest),
            "project_config": {**PROPOSAL_CONFIG, **({"audit_rate": args.audit_rate} if args.audit_rate is not None
                                                      else {})},
            "annotators": len(ANNOTATORS), "annotator": annotator_config.as_dict(),
            "annotator_description": annotator_config.describe(),
            "database": "sqlite" if args.sqlite else "postgresql", "celery": "eager (in-process)",
            "code_version": git_sha(),
        },
        "setup": {"quick": args.quick, "machine_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                  "load_average_before": load_before, "load_average_after": os.getloadavg(),
                  "cpu_calibration_ms_before": calibration, "seconds": time.perf_counter() - started},
    })
    verifier_thresholds = verifier_manifest.get("thresholds")
    notes = [
        f"{SIMULATED_LABEL}: human seconds come from its time model, errors from its seeded error model",
        annotator_config.describe().replace("\n", "; "),
        f"world: {n_images} synthetic scenes (seed {args.seed}), {figures['datapoints']} datapoints per arm incl. "
        "hard negatives; same media, pairs and SAM 3 proposals in both arms",
        f"SAM 3 {sam3_manifest.get('model_version')} ({sam3_path}); verifier {verifier_manifest.get('model_version')} "
        f"({verifier_path}), thresholds at target precision {verifier_manifest.get('target_precision')}: "
        f"{verifier_thresholds}" + (" -> it auto-accepts nothing" if not any((verifier_thresholds or {}).values())
                                    else " (None: that claim always goes to a human; ev_zero = 'not present' at "
                                         "routing, ev_zero_after_check after a human rejected every mask; "
                                         "<claim>_unboxed_explained where every proposal the question leaves unboxed "
                                         "is one MV is sure is wrong, lies mostly inside the boxed masks, or was "
                                         "rejected by a human check and SAM 3 clearly prefers another phrase for it)")
        + (f"; ev_zero applies to P(absent) with SAM 3's presence {verifier_manifest['absence_with_sam3']}"
           if verifier_manifest.get("absence_with_sam3") else "")
        + (f"; these claims apply to P(claim) from the verifier and SAM 3's witnesses (logistic weights): "
           f"{verifier_manifest['with_sam3']}" if verifier_manifest.get("with_sam3") else ""),
        "escaped error rate = accepted datapoints with a wrong mask, a false 'not present' or a missed instance on "
        "an exhaustive datapoint / accepted datapoints (ground truth exact)",
        "human share = datapoints with >= 1 human task / datapoints; AI verification costs no human seconds",
        f"goal (>= 2x masks per human-hour at an escaped-error rate <= Phase 1's): "
        f"{'met' if figures['goal_met'] else 'NOT met'} in this run",
    ]
    name = args.name or (NAME + ("-quick" if args.quick else ""))
    write_report(name, figures, table_rows=rows, notes=notes)
    return 0


def run(args, n_images: int, data_dir: str, database_url: str, annotator_config, sam3_path: Path,
        sam3_manifest: dict, verifier_path: Path, verifier_manifest: dict) -> tuple[dict, list[dict], dict]:
    """Both arms on one world in one fresh database; (figures, table rows, per-arm details)."""
    setup_django_in_process(database_url, data_dir)
    from django.contrib.auth import get_user_model

    from dataengine.engine.demo import start_server
    from dataengine.engine.models import ModelKind
    from dataengine.engine.services import register_model_version
    from simulated_annotator.ground_truth import GroundTruth
    from verifiers.model import registry_fields

    gold_path = make_world(Path(data_dir) / "world", args.seed, n_images)
    ground_truth = GroundTruth.from_gold(gold_path)
    User = get_user_model()
    users = {name: User.objects.get_or_create(username=f"bench-{name}")[0] for name in ("lead", *ANNOTATORS)}
    sam3 = register_model_version(name=sam3_manifest.get("model_version") or sam3_path.name, uri=str(sam3_path),
                                  kind=ModelKind.SAM3, manifest=sam3_manifest)
    verifier = register_model_version(**registry_fields(str(verifier_path), verifier_manifest))
    port = free_port()
    server = start_server(port)
    try:
        arms = {}
        for phase in (1, 2):
            project = new_arm_project(phase, gold_path=gold_path, users=users, sam3=sam3, verifier=verifier,
                                      audit_rate=args.audit_rate)
            arms[f"phase{phase}"] = run_arm(project, users=users, gold_path=gold_path, ground_truth=ground_truth,
                                            annotator_config=annotator_config, port=port)
    finally:
        server.shutdown()
        server.server_close()
    figures, rows = summarise(arms["phase1"], arms["phase2"])
    return figures, rows, arms


if __name__ == "__main__":
    sys.exit(main())
