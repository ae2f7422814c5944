"""The demo: Phase 1 of the engine end to end on the embedded defaults, driven by simulated annotators.

Steps: accounts and a project → a synthetic world ingested as media → datapoints (one per scene × phrase,
negatives included) → the tiny SAM 3 proposes masks for every datapoint → SIMULATED annotators do mask
verification, exhaustivity verification and correction through the HTTP API → an SA-Co snapshot in storage.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.files.storage import default_storage
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.db.models import Count, Sum
from rest_framework.authtoken.models import Token

from dataengine.accounts.models import Project, Role
from dataengine.accounts.services import add_member, create_project
from dataengine.annotation.models import HumanTask, Mask, MaskState, TaskState, Verdict
from dataengine.annotation.proposing import request_proposals
from dataengine.concepts.models import Datapoint, DatapointSource
from dataengine.concepts.services import create_datapoints, get_or_create_concept
from dataengine.engine.exports import export_snapshot
from model.provenance import code_version
from dataengine.engine.services import promote_model_version, register_model_version
from dataengine.media.models import MediaItem
from dataengine.media.services import ingest_folder

PROJECT_NAME = "Demo: shapes world"
DEMO_USERS = {  # username: (role, password) — printed, for a local demo only
    "admin": (Role.ADMIN, "demo-admin"),
    "lead": (Role.DATA_LEAD, "demo-lead"),
    "annotator1": (Role.ANNOTATOR, "demo-annotator1"),
    "annotator2": (Role.ANNOTATOR, "demo-annotator2"),
}
# Phase 1: humans check everything, so the demo shows them the tiny SAM 3's top 3 proposals per phrase whatever
# their score (the setting the time model's calibration check uses, docs/simulated-annotator.md), each drawn again
# by the click tracker, which sees the scenes at twice the tiny SAM 3's resolution (model.sam3.refine).
DEMO_PROJECT_CONFIG = {"score_threshold": 0.0, "max_instances": 3, "refine_masks": True}


@dataclass
class DemoOptions:
    images: int = 24
    seed: int = 0
    error_rate: float = 0.03
    port: int = 8000
    world_dir: Path = field(default_factory=lambda: settings.DATA_DIR / "demo-world")


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # the simulated annotators make thousands of requests
        pass


def start_server(port: int) -> ThreadedWSGIServer:
    """Serve the API, the admin and the landing page on 127.0.0.1:port from a background thread."""
    server = ThreadedWSGIServer(("127.0.0.1", port), QuietHandler)
    server.set_app(StaticFilesHandler(get_wsgi_application()))
    threading.Thread(target=server.serve_forever, name="demo-http", daemon=True).start()
    return server


def ensure_users() -> dict[str, object]:
    User = get_user_model()
    users = {}
    for name, (role, password) in DEMO_USERS.items():
        user, _ = User.objects.get_or_create(username=name)
        user.is_staff = user.is_superuser = role == Role.ADMIN
        user.set_password(password)
        user.save()
        users[name] = user
    return users


def fresh_project(users) -> Project:
    Project.objects.filter(name=PROJECT_NAME).delete()
    project = create_project(name=PROJECT_NAME, creator=users["admin"], phase=1, config=DEMO_PROJECT_CONFIG,
                             description="Synthetic shapes world; human work done by SIMULATED annotators.")
    for name, (role, _) in DEMO_USERS.items():
        add_member(project, users[name], role)
    return project


def tiny_model_version():
    """The demo's SAM 3: the committed tiny checkpoint that ``make tiny-model`` trains on the synthetic world
    (``model.predict``'s ``default``), registered under its content-addressed version."""
    from model.predict import DEFAULT_CHECKPOINT
    from model.sam3.build import verify_checkpoint

    manifest = verify_checkpoint(DEFAULT_CHECKPOINT)
    return register_model_version(name=manifest["model_version"], uri=DEFAULT_CHECKPOINT, manifest=manifest,
                                  metrics=manifest.get("test_metrics") or {})


def load_world(options: DemoOptions) -> Path:
    from model.synthetic import generate_world

    gold = options.world_dir / "gold.json"
    info = json.loads(gold.read_text()).get("info", {}) if gold.exists() else {}
    if info.get("seed") != options.seed or info.get("n_images") != options.images:
        generate_world(options.world_dir, seed=options.seed, n_images=options.images)
    return gold


def create_world_datapoints(project: Project, gold_path: Path) -> int:
    from dataengine.taxonomy.services import map_synthetic_phrase

    document = json.loads(gold_path.read_text())
    media = {m.name: m for m in MediaItem.objects.filter(project=project)}
    # Every phrase maps to a real WordNet node (ingested on first use), e.g. "red circle" → circle.
    for phrase in sorted({entry["text_input"] for entry in document["images"]}):
        get_or_create_concept(phrase, ontology_node=map_synthetic_phrase(phrase))
    pairs_by_source: dict[str, list] = {}
    for entry in document["images"]:
        item = media[Path(entry["file_name"]).name]
        source = DatapointSource.HARD_NEGATIVE if entry.get("phrase_kind") == "hard_negative" else DatapointSource.MANUAL
        pairs_by_source.setdefault(source, []).append((item, entry["text_input"]))
    return sum(len(create_datapoints(project, pairs, source=source)) for source, pairs in pairs_by_source.items())


def run_simulated_annotators(project: Project, users, gold_path: Path, options: DemoOptions):
    from simulated_annotator.annotator import SimulatedAnnotator, run_team
    from simulated_annotator.config import AnnotatorConfig
    from simulated_annotator.ground_truth import GroundTruth

    ground_truth = GroundTruth.from_gold(gold_path)
    config = AnnotatorConfig(error_rate_mv=options.error_rate, error_rate_ev=options.error_rate,
                             error_rate_correction=options.error_rate, seed=options.seed)
    team = [SimulatedAnnotator(f"http://127.0.0.1:{options.port}", Token.objects.get_or_create(user=users[n])[0].key,
                               project.pk, ground_truth, config, name=n) for n in ("annotator1", "annotator2")]
    stats = run_team(team, idle_rounds=2, idle_sleep=0.2)
    return ground_truth, config, stats


def calibration_summary(stats, ground_truth) -> str:
    """How this run's SIMULATED seconds compare with the paper's all-human figures (207 s / 30 s)."""
    from simulated_annotator.calibration import check_calibration

    return check_calibration(stats.log, ground_truth).summary() + (
        "\n  (the constants are calibrated with proposals that find no true instance, docs/simulated-annotator.md;"
        "\n   the demo's SAM 3 is trained, so a positive whose proposals need no correction costs less: that saving"
        "\n   is the engine's, not a calibration error)")


def summary_rows(project: Project, stats, ground_truth, snapshot, wall_seconds: float) -> list[tuple[str, str]]:
    from simulated_annotator.report import escaped_errors, seconds_per_datapoint

    datapoints = Datapoint.objects.filter(project=project, is_gold=False)
    labels = dict(datapoints.values_list("final_label").annotate(n=Count("id")).order_by())
    states = dict(datapoints.values_list("state").annotate(n=Count("id")).order_by())
    tasks = dict(HumanTask.objects.filter(project=project, state=TaskState.DONE).values_list("kind")
                 .annotate(n=Count("id")).order_by())
    seconds = dict(Verdict.objects.filter(datapoint__project=project, by_ai=False).values_list("kind")
                   .annotate(s=Sum("seconds")).order_by())
    with default_storage.open(snapshot.storage_name) as handle:
        document = json.load(handle)
    escaped = escaped_errors(document, ground_truth)
    timing = seconds_per_datapoint(stats.log, ground_truth)
    accepted_masks = Mask.objects.filter(datapoint__project=project, state=MaskState.ACCEPTED).count()
    human_seconds = sum(v or 0 for v in seconds.values())
    return [
        ("datapoints", str(datapoints.count())),
        ("  accepted positive", str(labels.get("positive", 0))),
        ("  accepted negative (verified not present)", str(labels.get("negative", 0))),
        ("  rejected (vague / flagged)", str(labels.get("rejected", 0))),
        ("  failed", str(states.get("failed", 0))),
        ("accepted masks", str(accepted_masks)),
        ("human tasks: mask verification", str(tasks.get("mask_verification", 0))),
        ("human tasks: exhaustivity verification", str(tasks.get("exhaustivity_verification", 0))),
        ("human tasks: correction", str(tasks.get("correction", 0))),
        ("SIMULATED human-seconds (total)", f"{human_seconds:,.0f}"),
        ("  mv / ev / correction", " / ".join(f"{seconds.get(k) or 0:,.0f}" for k in ("mv", "ev", "correction"))),
        ("SIMULATED s per positive datapoint (paper 207)", f"{timing.positive_mean:.1f}"),
        ("SIMULATED s per negative datapoint (paper 30)", f"{timing.negative_mean:.1f}"),
        ("SIMULATED human-seconds per accepted mask", f"{human_seconds / accepted_masks:.1f}" if accepted_masks else "-"),
        ("escaped errors per 1,000 accepted masks", f"{escaped.per_1000_masks:.1f}"),
        ("escaped errors per 1,000 accepted datapoints", f"{escaped.per_1000_datapoints:.1f}"),
        ("edit conflicts seen by annotators (409/403)", str(stats.conflicts)),
        ("snapshot (SA-Co JSON in storage)", f"{snapshot.storage_name} ({snapshot.counts['datapoints']} pairs)"),
        ("model", project.active_model.name),
        ("code version", code_version()),
        ("wall time", f"{wall_seconds:.1f} s"),
    ]


def print_table(write, title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    write(f"\n{title}\n" + "-" * (width + 24))
    for key, value in rows:
        write(f"{key.ljust(width)}  {value}")
