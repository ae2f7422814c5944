"""Ontology services: ingest runs, phrase mapping, expansion plans and coverage, hard-negative mining.

Long work (dump ingest, plan application with media ingest, hard-negative mining) runs on the ``cpu``
queue (dataengine.taxonomy.tasks); the ``request_*`` functions create a Job keyed by the inputs and
enqueue after commit, the ``run_*`` / ``do_*`` functions are what the tasks (and tests) call.
"""
from __future__ import annotations

import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Count, Q

from dataengine.accounts.models import Project
from dataengine.concepts.models import Concept, Datapoint, DatapointSource, DatapointState, FinalLabel
from dataengine.concepts.services import create_datapoints, get_or_create_concept
from dataengine.engine.models import Job, JobState
from dataengine.engine.services import get_or_create_job, record_audit
from dataengine.errors import Conflict, InvalidInput, NotFound
from dataengine.media.models import MediaItem, MediaStatus
from dataengine.taxonomy import queries
from dataengine.taxonomy.models import (
    ExpansionPlan,
    HardNegative,
    IngestRun,
    IngestState,
    Node,
    OntologySource,
    PhraseState,
    PlanDomain,
    PlanPhrase,
)
from dataengine.taxonomy.store import DatabaseSink
from ontology import wordnet
from ontology.embeddings import Embedder, default_embedder
from ontology.entities import OntologyError
from ontology.ingest import Checkpoint, ingest_dump, ingest_entities
from ontology.phrases import Candidate, PhraseMapper, check_groundable, normalize_phrase
from ontology.synthetic import map_synthetic_phrase as _map_synthetic
from ontology.taxonomy import Taxonomy
from ontology.wikidata import DumpError, sniff_format

log = logging.getLogger(__name__)

INGEST_TASK = "taxonomy.ingest_dump.v1"
APPLY_PLAN_TASK = "taxonomy.apply_plan.v1"
MINE_TASK = "taxonomy.mine_hard_negatives.v1"

# Subtrees whose nodes can be outlined in an image. WordNet anchors are (lemma, ancestor lemma or None)
# so that they resolve on 3.0 and 3.1 alike; Wikidata ids are stable.
WORDNET_GROUNDABLE = (("physical object", None), ("matter", "physical entity"), ("plane figure", None),
                      ("solid", "shape"))
WIKIDATA_GROUNDABLE = ("Q223557", "Q7239", "Q2095", "Q2424752")
MEDIA_SOURCE_KINDS = ("dataset", "folder", "s3")


def get_embedder() -> Embedder:
    """The phrase/node embedder (MiniLM); tests replace this function."""
    return default_embedder()


# ---------------------------------------------------------------- ingest

def check_dump_path(path: str) -> Path:
    """The dump as a Path; InvalidInput for a missing file or a wrong file type (checked by content)."""
    try:
        sniff_format(path)
    except DumpError as exc:
        raise InvalidInput(str(exc)) from None
    return Path(path)


@transaction.atomic
def request_dump_ingest(path: str, *, actor=None, skip_malformed: bool = False) -> IngestRun:
    """An IngestRun for a Wikidata dump, enqueued on the cpu queue after commit."""
    check_dump_path(path)
    run = IngestRun.objects.create(source=OntologySource.WIKIDATA, path=str(path), skip_malformed=skip_malformed,
                                   created_by=actor if getattr(actor, "is_authenticated", False) else None)
    from dataengine.taxonomy.tasks import ingest_dump_task

    transaction.on_commit(lambda: ingest_dump_task.delay(run.pk))
    return run


def resume_dump_ingest(run: IngestRun) -> IngestRun:
    """Enqueue a failed or interrupted run again; it continues from its last committed offset."""
    if run.source != OntologySource.WIKIDATA:
        raise InvalidInput("only Wikidata dump runs can be resumed")
    if run.state == IngestState.DONE:
        raise Conflict(f"ingest run {run.pk} is already done")
    from dataengine.taxonomy.tasks import ingest_dump_task

    IngestRun.objects.filter(pk=run.pk).update(state=IngestState.QUEUED, error="")
    transaction.on_commit(lambda: ingest_dump_task.delay(run.pk))
    run.refresh_from_db()
    return run


def run_dump_ingest(run_id: int, *, batch_size: int = 2000, progress: bool = False) -> IngestRun:
    """Read the run's dump from its committed offset to the end (the task body). Never raises for bad data:
    the run ends FAILED with the error, keeping every batch committed before it."""
    run = IngestRun.objects.get(pk=run_id)
    if run.state == IngestState.DONE:
        return run
    IngestRun.objects.filter(pk=run.pk).update(state=IngestState.RUNNING)
    resume = Checkpoint(run.offset, run.lines, run.entities)

    def on_batch(checkpoint: Checkpoint, rate: float) -> None:
        IngestRun.objects.filter(pk=run.pk).update(rate=rate)

    try:
        result = ingest_dump(run.path, DatabaseSink(run), resume=resume, batch_size=batch_size,
                             skip_malformed=run.skip_malformed, progress=progress, on_batch=on_batch)
    except (DumpError, OSError) as exc:
        IngestRun.objects.filter(pk=run.pk).update(state=IngestState.FAILED, error=str(exc))
        log.warning("ingest run %s failed: %s", run.pk, exc)
    else:
        IngestRun.objects.filter(pk=run.pk).update(state=IngestState.DONE, rate=result.rate, report=result.report,
                                                   error="")
    queries.invalidate()
    run.refresh_from_db()
    return run


def ingest_wordnet(folder: str | Path | None = None, *, actor=None) -> IngestRun:
    """Read every WordNet noun synset into the node and edge tables (idempotent: nodes are upserted)."""
    try:
        folder = Path(folder) if folder else wordnet.find_folder()
        entities = wordnet.read_nouns(folder)
        run = IngestRun.objects.create(source=OntologySource.WORDNET, path=str(folder), state=IngestState.RUNNING,
                                       created_by=actor if getattr(actor, "is_authenticated", False) else None)
        started = time.perf_counter()
        total = ingest_entities(entities, DatabaseSink(run), batch_size=10000)
    except wordnet.WordNetError as exc:
        raise InvalidInput(str(exc)) from None
    seconds = time.perf_counter() - started
    IngestRun.objects.filter(pk=run.pk).update(state=IngestState.DONE, entities=total,
                                               rate=total / max(seconds, 1e-9))
    queries.invalidate()
    run.refresh_from_db()
    return run


def ensure_wordnet() -> None:
    """Ingest WordNet once (the demo and a fresh install call this)."""
    if not Node.objects.filter(source=OntologySource.WORDNET).exists():
        ingest_wordnet()


def map_synthetic_phrase(phrase: str) -> str:
    """The WordNet node of a synthetic-world phrase (``red circle`` → circle under plane figure).

    Ingests WordNet first when the tables hold none. InvalidInput when the phrase's head noun has no sense.
    """
    ensure_wordnet()
    try:
        return _map_synthetic(phrase, senses=queries.current_senses(), taxonomy=queries.current_taxonomy())
    except OntologyError as exc:
        raise InvalidInput(str(exc)) from None


# ---------------------------------------------------------------- phrases

def groundable_roots(taxonomy: Taxonomy) -> set[str]:
    roots = {q for q in WIKIDATA_GROUNDABLE if q in taxonomy}
    senses = queries.current_senses()
    for lemma, under in WORDNET_GROUNDABLE:
        anchors = [a for a in senses.get(under, [])] if under else []
        for sense in senses.get(lemma, []):
            if sense in taxonomy and (not under or any(taxonomy.is_ancestor(a, sense) for a in anchors if a in taxonomy)):
                roots.add(sense)
                break
    return roots


@dataclass
class MappedPhrase:
    phrase: str
    candidates: list[Candidate]
    groundable: bool
    reason: str


def _groundability(taxonomy: Taxonomy, phrase: str, node: str | None, roots: set[str]):
    if node is None or node not in taxonomy:
        return check_groundable(phrase, node_id=None)
    path = taxonomy.path_to_root(node)
    return check_groundable(phrase, node_id=node, ancestors=taxonomy.ancestors(node), groundable_roots=roots,
                            depth=len(path) - 1)


def map_phrase(text: str, *, limit: int = 5) -> MappedPhrase:
    """Normalise a free phrase, map it to scored nodes and say whether its best node is groundable."""
    lexicon = queries.current_lexicon()
    mapper = PhraseMapper(lexicon, embedder=get_embedder(), cache=queries.DatabaseEmbeddingCache())
    phrase = mapper.normalize(text)
    if not phrase:
        raise InvalidInput("the phrase is empty after normalisation")
    candidates = mapper.map(phrase, limit=limit)
    taxonomy = queries.current_taxonomy()
    verdict = _groundability(taxonomy, phrase, candidates[0].node_id if candidates else None,
                             groundable_roots(taxonomy))
    return MappedPhrase(phrase, candidates, verdict.ok, verdict.reason)


def clean_phrases(texts: list[str]) -> list[dict]:
    """Normalised form, near-duplicate group and groundability of each phrase (without embeddings)."""
    lexicon = queries.current_lexicon()
    taxonomy = queries.current_taxonomy()
    roots = groundable_roots(taxonomy)
    mapper = PhraseMapper(lexicon)
    out, seen = [], {}
    from ontology.phrases import phrase_key

    for text in texts:
        phrase = mapper.normalize(text)
        key = phrase_key(phrase)
        duplicate_of = seen.get(key) if phrase else None
        if phrase and duplicate_of is None:
            seen[key] = phrase
        candidates = mapper.map(phrase, limit=1) if phrase else []
        node = candidates[0].node_id if candidates else None
        verdict = _groundability(taxonomy, phrase, node, roots)
        out.append({"input": text, "phrase": phrase, "duplicate_of": duplicate_of,
                    "node": node, "groundable": verdict.ok, "reason": verdict.reason})
    return out


# ---------------------------------------------------------------- plans

def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be a positive integer")
    return value


def check_domain(taxonomy: Taxonomy, domain: dict) -> dict:
    """A validated domain spec (see DomainSerializer); InvalidInput / NotFound say what is wrong."""
    name = domain.get("name") or ""
    roots = list(dict.fromkeys(domain.get("roots") or []))
    if not roots:
        raise InvalidInput(f"domain {name!r}: the root set is empty")
    queries.check_in_taxonomy(taxonomy, roots)
    for a in roots:
        for b in roots:
            if a != b and taxonomy.is_ancestor(a, b):
                if taxonomy.is_ancestor(b, a):
                    raise InvalidInput(f"domain {name!r}: cyclic root set: {a} and {b} are each other's ancestors",
                                       roots=[a, b])
                raise InvalidInput(f"domain {name!r}: root {b} lies under root {a}; list only {a}", roots=[a, b])
    quotas = domain.get("node_quotas") or {}
    queries.check_in_taxonomy(taxonomy, list(quotas))
    for node, quota in quotas.items():
        if not isinstance(quota, dict) or set(quota) - {"datapoints_per_phrase", "images_per_phrase"}:
            raise InvalidInput(f"domain {name!r}: quota for {node} must be "
                               '{"datapoints_per_phrase": n, "images_per_phrase": m}')
        for key, value in quota.items():
            _positive(value, f"domain {name!r}: {node}.{key}")
    for source in domain.get("media_sources") or []:
        kind = source.get("kind") if isinstance(source, dict) else None
        if kind not in MEDIA_SOURCE_KINDS:
            raise InvalidInput(f"domain {name!r}: a media source kind must be one of {MEDIA_SOURCE_KINDS}")
        if kind == "folder" and not source.get("path"):
            raise InvalidInput(f"domain {name!r}: a folder source needs a path")
        if kind == "s3" and not source.get("bucket"):
            raise InvalidInput(f"domain {name!r}: an s3 source needs a bucket (and optionally a prefix)")
    return {**domain, "roots": roots}


@transaction.atomic
def create_plan(project: Project, *, name: str, domains: list[dict], actor=None, **settings) -> ExpansionPlan:
    """A plan with its domains, all validated before anything is written."""
    if not domains:
        raise InvalidInput("a plan needs at least one domain")
    taxonomy = queries.current_taxonomy()
    checked = [check_domain(taxonomy, d) for d in domains]
    names = [d["name"] for d in checked]
    if len(set(names)) != len(names):
        raise InvalidInput("domain names must be unique within a plan")
    if ExpansionPlan.objects.filter(project=project, name=name).exists():
        raise Conflict(f"the project already has a plan named {name!r}")
    plan = ExpansionPlan.objects.create(project=project, name=name, created_by=actor, **settings)
    for domain in checked:
        PlanDomain.objects.create(plan=plan, **domain)
    record_audit("plan.create", plan, actor=actor, project=project, domains=names)
    return plan


def _domain_media(project: Project, domain: PlanDomain, *, s3_client=None) -> list[int]:
    """Ready media ids of the domain's sources, ingesting folders and S3 prefixes first (each file committed
    on its own: a failure part-way keeps what was ingested)."""
    from dataengine.media.services import ingest_folder, ingest_s3_prefix

    ids: list[int] = []
    for source in domain.media_sources or [{"kind": "dataset"}]:
        if source["kind"] == "dataset":
            queryset = MediaItem.objects.filter(project=project, status=MediaStatus.READY)
            if source.get("name_prefix"):
                queryset = queryset.filter(name__startswith=source["name_prefix"])
            ids += list(queryset.order_by("id").values_list("id", flat=True))
        elif source["kind"] == "folder":
            report = ingest_folder(project, Path(source["path"]))
            ids += report.created + report.duplicates
        else:
            if s3_client is None:
                from dataengine.media.storage import s3_client as make_client

                s3_client = make_client()
            report = ingest_s3_prefix(project, bucket=source["bucket"], prefix=source.get("prefix", ""),
                                      client=s3_client)
            ids += report.created + report.duplicates
    ready = set(MediaItem.objects.filter(pk__in=ids, status=MediaStatus.READY).values_list("id", flat=True))
    return [i for i in dict.fromkeys(ids) if i in ready]


def _domain_nodes(taxonomy: Taxonomy, domain: PlanDomain) -> list[Node]:
    """The domain's phrases: labelled, groundable nodes of its subtrees, nearest the roots first."""
    indices = taxonomy.subtree(domain.roots, max_depth=domain.max_depth)
    ids = taxonomy.ids_of(indices)
    nodes = {n.id: n for n in Node.objects.filter(pk__in=ids).exclude(label=None).exclude(label="")}
    depth = {}
    for root in domain.roots:
        depth[root] = 0
        for node, d in taxonomy.descendants(root, max_depth=domain.max_depth).items():
            depth[node] = min(d, depth.get(node, d))
    chosen, seen_phrases = [], set()
    for node in sorted(nodes.values(), key=lambda n: (depth.get(n.id, 0), -n.sitelinks, n.id)):
        phrase = normalize_phrase(node.label)
        verdict = check_groundable(phrase, node_id=node.id)
        if not verdict.ok or phrase in seen_phrases:
            continue
        seen_phrases.add(phrase)
        chosen.append(node)
        if len(chosen) >= domain.max_phrases:
            break
    return chosen


def _phrase_stats(project: Project, concept_ids) -> dict[int, dict]:
    """Per concept: datapoint counts by outcome and how many accepted positives needed a human mask edit."""
    stats: dict[int, dict] = defaultdict(lambda: defaultdict(int))
    rows = (Datapoint.objects.filter(project=project, concept_id__in=concept_ids, is_gold=False)
            .values("concept_id", "state", "final_label").annotate(n=Count("id")))
    for row in rows:
        s = stats[row["concept_id"]]
        s["datapoints"] += row["n"]
        if row["state"] == DatapointState.ACCEPTED:
            s["accepted"] += row["n"]
            s["accepted_" + (row["final_label"] or "none")] += row["n"]
        elif row["state"] in (DatapointState.REJECTED, DatapointState.FAILED):
            s["rejected"] += row["n"]
        else:
            s["open"] += row["n"]
    edited = (Datapoint.objects.filter(project=project, concept_id__in=concept_ids, is_gold=False,
                                       state=DatapointState.ACCEPTED, final_label=FinalLabel.POSITIVE)
              .filter(Q(masks__source__in=["human", "imported"]) | Q(masks__state="rejected"))
              .values("concept_id").annotate(n=Count("id", distinct=True)))
    for row in edited:
        stats[row["concept_id"]]["edited"] = row["n"]
    return stats


def _stop_state(plan: ExpansionPlan, phrase: PlanPhrase, stats: dict) -> str | None:
    if stats.get("accepted", 0) >= phrase.target_datapoints:
        return PhraseState.ENOUGH_DATA
    positives = stats.get("accepted_positive", 0)
    if positives >= plan.model_good_min_samples:
        if 1 - stats.get("edited", 0) / positives >= plan.model_good_threshold:
            return PhraseState.MODEL_GOOD
    return None


@dataclass
class PlanRound:
    created: int = 0
    domains: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"created": self.created, "domains": self.domains}


def apply_plan(plan: ExpansionPlan, *, s3_client=None) -> PlanRound:
    """One round of the plan: every active phrase gets ``images_per_phrase`` more images it has not been
    paired with; phrases with enough accepted data, or that the model already handles, stop.

    Media sources are ingested first (kept even if the round then fails). The round itself is checked
    as a whole before anything is written: quotas larger than a domain's media raise InvalidInput.
    """
    project = plan.project
    taxonomy = queries.current_taxonomy()
    domains = list(plan.domains.order_by("id"))
    for domain in domains:
        check_domain(taxonomy, {"name": domain.name, "roots": domain.roots, "node_quotas": domain.node_quotas,
                                "media_sources": domain.media_sources})
    media_by_domain = {d.pk: _domain_media(project, d, s3_client=s3_client) for d in domains}
    nodes_by_domain = {d.pk: _domain_nodes(taxonomy, d) for d in domains}
    for domain in domains:  # check everything before writing anything
        available = len(media_by_domain[domain.pk])
        wanted = max([domain.images_per_phrase] + [q.get("images_per_phrase", 0) for q in domain.node_quotas.values()])
        if wanted > available:
            raise InvalidInput(f"domain {domain.name!r} asks for {wanted} images per phrase but its media sources "
                               f"hold {available} ready image(s)", domain=domain.name, available=available)
        if not nodes_by_domain[domain.pk]:
            raise InvalidInput(f"domain {domain.name!r}: its subtrees hold no labelled, groundable node")
    result = PlanRound()
    with transaction.atomic():
        plan = ExpansionPlan.objects.select_for_update().get(pk=plan.pk)
        for domain in domains:
            media = MediaItem.objects.in_bulk(media_by_domain[domain.pk])
            summary = {"phrases": 0, "created": 0, "stopped": defaultdict(int)}
            phrases = []
            for node in nodes_by_domain[domain.pk]:
                quota = domain.node_quotas.get(node.id, {})
                concept = get_or_create_concept(node.label, ontology_node=node.id)
                phrase, _ = PlanPhrase.objects.get_or_create(
                    domain=domain, node_id=node.id,
                    defaults={"concept": concept,
                              "target_datapoints": quota.get("datapoints_per_phrase", domain.datapoints_per_phrase),
                              "images_per_round": quota.get("images_per_phrase", domain.images_per_phrase)})
                phrases.append(phrase)
            stats = _phrase_stats(project, [p.concept_id for p in phrases])
            used = defaultdict(set)
            for concept_id, media_id in Datapoint.objects.filter(
                    project=project, concept_id__in=[p.concept_id for p in phrases]).values_list("concept_id", "media_id"):
                used[concept_id].add(media_id)
            order = sorted(media)
            for phrase in phrases:
                state = _stop_state(plan, phrase, stats.get(phrase.concept_id, {}))
                pairs = []
                if state is None:
                    start = zlib.crc32(phrase.node_id.encode()) % len(order) if order else 0  # spread phrases over the media
                    fresh = [m for m in order[start:] + order[:start] if m not in used[phrase.concept_id]]
                    pairs = [(media[m], phrase.concept.phrase) for m in fresh[:phrase.images_per_round]]
                    state = PhraseState.ACTIVE if pairs else PhraseState.NO_MEDIA
                if state != phrase.state:
                    phrase.state = state
                    phrase.save(update_fields=["state", "updated_at"])
                if pairs:
                    created = create_datapoints(project, pairs, source=DatapointSource.ONTOLOGY)
                    summary["created"] += len(created)
                summary["phrases"] += 1
                if state != PhraseState.ACTIVE:
                    summary["stopped"][state] += 1
            summary["stopped"] = dict(summary["stopped"])
            result.domains[domain.name] = summary
            result.created += summary["created"]
        if plan.state == "draft":
            plan.state = "active"
            plan.save(update_fields=["state", "updated_at"])
        record_audit("plan.apply", plan, project=project, **result.as_dict())
    return result


def request_plan_application(plan: ExpansionPlan, *, actor=None) -> Job:
    """A Job applying the plan once on the cpu queue (one per plan revision and round)."""
    from dataengine.taxonomy.tasks import apply_plan_task

    rounds = Job.objects.filter(task_name=APPLY_PLAN_TASK, payload__plan=plan.pk).count()
    with transaction.atomic():
        job, created = get_or_create_job(APPLY_PLAN_TASK, project=plan.project, payload={"plan": plan.pk},
                                         key_inputs={"plan": plan.pk, "round": rounds,
                                                     "revision": plan.updated_at.isoformat()})
        if created:
            transaction.on_commit(lambda: apply_plan_task.delay(job.pk))
    return job


def run_plan_job(job_id: int) -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        job.attempts += 1
        job.save(update_fields=["attempts", "updated_at"])
        if job.state != JobState.QUEUED:
            return job
    plan = ExpansionPlan.objects.get(pk=job.payload["plan"])
    try:
        summary, state, error = apply_plan(plan).as_dict(), JobState.DONE, ""
    except (InvalidInput, NotFound) as exc:
        summary, state, error = {}, JobState.FAILED, exc.message
    Job.objects.filter(pk=job.pk).update(state=state, summary=summary, error=error)
    job.refresh_from_db()
    return job


def plan_coverage(plan: ExpansionPlan) -> dict:
    """Per node and per domain: quota, datapoints, accepted (positive / negative), open, and the phrase state."""
    domains = []
    for domain in plan.domains.order_by("id"):
        phrases = list(domain.phrases.select_related("concept").order_by("id"))
        stats = _phrase_stats(plan.project, [p.concept_id for p in phrases])
        nodes = []
        for phrase in phrases:
            s = stats.get(phrase.concept_id, {})
            nodes.append({"node": phrase.node_id, "phrase": phrase.concept.phrase, "state": phrase.state,
                          "target": phrase.target_datapoints, "datapoints": s.get("datapoints", 0),
                          "accepted": s.get("accepted", 0), "positive": s.get("accepted_positive", 0),
                          "negative": s.get("accepted_negative", 0), "open": s.get("open", 0),
                          "rejected": s.get("rejected", 0),
                          "progress": min(1.0, s.get("accepted", 0) / max(phrase.target_datapoints, 1))})
        covered = sum(1 for n in nodes if n["positive"] > 0)
        domains.append({
            "name": domain.name, "roots": domain.roots, "phrases": len(nodes),
            "phrases_covered": covered, "phrases_done": sum(1 for n in nodes if n["state"] in (
                PhraseState.ENOUGH_DATA, PhraseState.MODEL_GOOD)),
            "datapoints": sum(n["datapoints"] for n in nodes), "accepted": sum(n["accepted"] for n in nodes),
            "target": sum(n["target"] for n in nodes),
            "coverage": covered / len(nodes) if nodes else 0.0, "nodes": nodes,
        })
    return {"plan": plan.pk, "name": plan.name, "state": plan.state, "domains": domains}


# ---------------------------------------------------------------- hard negatives

def _hard_negative_settings(project: Project, node_id: str) -> tuple[float, int]:
    """(IoU threshold, negatives per image) from the newest plan whose domain covers the node."""
    taxonomy = queries.current_taxonomy()
    for domain in PlanDomain.objects.filter(plan__project=project).select_related("plan").order_by("-plan__id", "id"):
        if any(r == node_id or (r in taxonomy and node_id in taxonomy and taxonomy.is_ancestor(r, node_id))
               for r in domain.roots):
            return domain.plan.hard_negative_iou_threshold, domain.hard_negatives_per_image
    return ExpansionPlan._meta.get_field("hard_negative_iou_threshold").default, 5


def request_hard_negative_mining(project: Project, *, datapoints=None) -> list[Job]:
    """One Job per verified positive (accepted, positive, mapped to a node) of the project, or of the given ones."""
    if project.active_model is None:
        raise InvalidInput("the project has no active model; hard negatives need SAM 3's predictions")
    queryset = Datapoint.objects.filter(project=project, state=DatapointState.ACCEPTED,
                                        final_label=FinalLabel.POSITIVE, is_gold=False).exclude(concept__ontology_node="")
    if datapoints is not None:
        queryset = queryset.filter(pk__in=[getattr(d, "pk", d) for d in datapoints])
    from dataengine.taxonomy.tasks import mine_hard_negatives_task

    jobs = []
    with transaction.atomic():
        for datapoint in queryset.select_related("concept", "media").order_by("id"):
            threshold, per_image = _hard_negative_settings(project, datapoint.concept.ontology_node)
            job, created = get_or_create_job(
                MINE_TASK, project=project,
                payload={"datapoint": datapoint.pk, "threshold": threshold, "per_image": per_image},
                key_inputs={"datapoint": datapoint.pk, "revision": datapoint.revision,
                            "model": project.active_model.name, "threshold": threshold})
            if created or job.state == JobState.QUEUED:
                transaction.on_commit(lambda j=job.pk: mine_hard_negatives_task.delay(j))
            jobs.append(job)
    return jobs


def _sam3_propose(project: Project) -> Callable:
    from workers.sam3 import get_predictor

    from dataengine.engine.config import ProjectConfig

    predictor = get_predictor(project.active_model.uri)
    config = ProjectConfig.of(project)

    def propose(image, phrases):
        return predictor.propose(image, phrases, score_threshold=config.score_threshold,
                                 mask_threshold=config.mask_threshold, max_instances=config.max_instances,
                                 dedupe_iou=config.dedupe_iou)

    return propose


def _open_image(media: MediaItem):
    from django.core.files.storage import default_storage
    from PIL import Image

    with default_storage.open(media.storage_name, "rb") as handle:
        image = Image.open(handle)
        image.load()
    return image.convert("RGB")


def _embedding_neighbours(taxonomy: Taxonomy, node_id: str, *, pool_limit: int = 500, k: int = 10):
    """Nodes near ``node_id`` in embedding space, drawn from its taxonomy neighbourhood (up to 3 levels up)."""
    from ontology.phrases import NodeText, node_vectors

    pool: set[str] = set()
    for ancestor, distance in taxonomy.ancestors(node_id, max_depth=3).items():
        pool.update(taxonomy.descendants(ancestor, max_depth=distance + 1, limit=pool_limit))
    pool -= {node_id, *taxonomy.ancestors(node_id)}
    rows = {n["id"]: n for n in Node.objects.filter(pk__in=list(pool) + [node_id]).exclude(label=None)
            .values("id", "label", "aliases", "description", "sitelinks")}
    if node_id not in rows or len(rows) < 2:
        return []
    texts = [NodeText(r["id"], r["label"], tuple(r["aliases"] or ()), r["description"], r["sitelinks"])
             for r in rows.values()]
    vectors = node_vectors(texts, get_embedder(), queries.DatabaseEmbeddingCache())
    query = vectors.pop(node_id)
    scored = sorted(((float(v @ query), n) for n, v in vectors.items()), reverse=True)
    return [(n, s) for s, n in scored[:k]]


def mine_hard_negatives(job_id: int, *, propose: Callable | None = None) -> Job:
    """The task body: propose candidates for the job's positive, keep the adversarial ones, record every
    decision, and send each kept one to exhaustivity verification as a hard-negative datapoint.

    ``propose(image, phrases)`` defaults to the project's active SAM 3. Idempotent: a done job is returned.
    """
    from ontology.negatives import check_adversarial, propose_negatives

    from dataengine.annotation.models import HumanTask, Mask, MaskState, TaskKind
    from dataengine.engine.config import ProjectConfig

    job = Job.objects.get(pk=job_id)
    if job.state != JobState.QUEUED:
        return job
    datapoint = Datapoint.objects.select_related("concept", "media", "project__active_model").get(
        pk=job.payload["datapoint"])
    project = datapoint.project
    node_id = datapoint.concept.ontology_node
    taxonomy = queries.current_taxonomy()
    if node_id not in taxonomy:
        Job.objects.filter(pk=job.pk).update(state=JobState.FAILED, error=f"unknown ontology node {node_id!r}")
        job.refresh_from_db()
        return job
    on_image = set(Datapoint.objects.filter(project=project, media=datapoint.media)
                   .values_list("concept__phrase", flat=True))
    labels = {n: l for n, l in Node.objects.filter(pk__in=set(taxonomy.siblings(node_id)) | set(
        taxonomy.cousins(node_id)) | set(taxonomy.uncles(node_id))).values_list("id", "label")}
    neighbours = _embedding_neighbours(taxonomy, node_id)
    labels.update(Node.objects.filter(pk__in=[n for n, _ in neighbours]).values_list("id", "label"))
    per_image = int(job.payload.get("per_image", 5))
    candidates = propose_negatives(
        taxonomy, node_id, neighbours=neighbours, exclude_phrases=on_image, limit=per_image * 3,
        phrase_of=lambda n: normalize_phrase(labels[n]) if labels.get(n) else None)
    masks = list(Mask.objects.filter(datapoint=datapoint, state=MaskState.ACCEPTED).values_list("rle", flat=True))
    propose = propose or _sam3_propose(project)
    checks = check_adversarial(_open_image(datapoint.media), masks, candidates, propose=propose,
                               threshold=float(job.payload["threshold"]))
    config = ProjectConfig.of(project)
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.state != JobState.QUEUED:
            return job
        # The quota is per image: negatives already mined there (for other positives) count.
        kept = Datapoint.objects.filter(project=project, media=datapoint.media,
                                        source=DatapointSource.HARD_NEGATIVE).count()
        for check in checks:
            negative = None
            if check.kept and kept < per_image:
                concept = get_or_create_concept(check.candidate.phrase, ontology_node=check.candidate.node_id)
                negative, created = Datapoint.objects.get_or_create(
                    project=project, media=datapoint.media, concept=concept, is_gold=False,
                    defaults={"source": DatapointSource.HARD_NEGATIVE, "phase": project.phase,
                              "state": DatapointState.EXHAUSTIVITY_VERIFICATION})
                if created:
                    HumanTask.objects.create(project=project, kind=TaskKind.EXHAUSTIVITY_VERIFICATION,
                                             datapoint=negative, priority=config.ev_priority)
                kept += 1
            HardNegative.objects.update_or_create(
                positive=datapoint, phrase=check.candidate.phrase,
                defaults={"project": project, "node_id": check.candidate.node_id, "route": check.candidate.route,
                          "proposal_reason": check.candidate.reason[:500], "overlap": check.overlap,
                          "instances": check.instances, "kept": negative is not None,
                          "decision": (check.reason if negative is not None or not check.kept
                                       else f"over the quota of {per_image} per image; " + check.reason)[:500],
                          "model_version": project.active_model.name if project.active_model else "",
                          "datapoint": negative})
        job.state, job.attempts = JobState.DONE, job.attempts + 1
        job.summary = {"candidates": len(checks), "kept": sum(1 for c in checks if c.kept)}
        job.save(update_fields=["state", "attempts", "summary", "updated_at"])
    return job
