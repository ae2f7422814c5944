"""Asking SAM 3 for proposals and storing what it returns.

request_proposals groups a project's pending datapoints by media item (each image is encoded once, all its
phrases batched) and enqueues, after commit, the chain gpu ``sam3.propose_masks.v1`` → cpu
``annotation.store_proposals.v1``. Each media item is one Job keyed by (project, media hash, phrases, model
version, thresholds, refining tracker): asking twice is the same job, and a replayed store does nothing. With the
project's ``refine_masks`` the payload names the click tracker of the active model (as click-to-segment picks it),
which draws every proposed mask again on the GPU worker.
"""
from __future__ import annotations

import logging
from collections import defaultdict

from celery import chain
from django.db import transaction

from dataengine.accounts.models import Project
from dataengine.annotation.interactive import choose_tracker
from dataengine.annotation.services import fail_datapoint, store_proposals
from dataengine.concepts.models import Datapoint, DatapointState
from dataengine.engine.config import ProjectConfig
from dataengine.engine.models import Job, JobState, ModelVersion
from dataengine.engine.services import get_or_create_job
from dataengine.errors import InvalidInput
from dataengine.media.models import MediaStatus
from dataengine.media.storage import media_uri

log = logging.getLogger(__name__)

PROPOSE_TASK = "sam3.propose_masks.v1"


def request_proposals(project: Project, *, datapoints=None) -> list[Job]:
    """Enqueue proposals for the project's pending datapoints (or the given ones) with its active model."""
    version = project.active_model
    if version is None:
        raise InvalidInput("the project has no active model; register and promote one first")
    queryset = Datapoint.objects.filter(project=project, state=DatapointState.PENDING, is_gold=False,
                                        media__status=MediaStatus.READY)
    if datapoints is not None:
        queryset = queryset.filter(pk__in=[d.pk for d in datapoints])
    by_media = defaultdict(list)
    for datapoint in queryset.select_related("media", "concept").order_by("media_id", "id"):
        by_media[datapoint.media].append(datapoint)
    jobs = []
    with transaction.atomic():
        for media, group in by_media.items():
            job, payload, created = create_proposal_job(project, media, group)
            if created or job.state == JobState.QUEUED:
                transaction.on_commit(lambda p=payload, j=job.pk: enqueue_proposal_chain(p, j))
            jobs.append(job)
    return jobs


def create_proposal_job(project: Project, media, datapoints: list[Datapoint]) -> tuple[Job, dict, bool]:
    """The job row for proposing masks for these datapoints of one media item; marks them PROPOSING."""
    version, config = project.active_model, ProjectConfig.of(project)
    phrases = [d.concept.phrase for d in datapoints]
    refine = None
    if config.refine_masks:
        _, tracker = choose_tracker(project)
        if tracker.startswith("preset:"):
            raise InvalidInput(f"refine_masks needs a trained click tracker; {version.name} names none and the "
                               f"default is the untrained {tracker}")
        refine = {"uri": tracker}  # the worker reports the version it loaded
    payload = {
        "media_uri": media_uri(media.storage_name),
        "phrases": phrases,
        "model": {"version": version.name, "uri": version.uri},
        "score_threshold": config.score_threshold,
        "mask_threshold": config.mask_threshold,
        "max_instances": config.max_instances,
        "dedupe_iou": config.dedupe_iou,
        "refine": refine,
        "media_sha256": media.sha256,
    }
    # The project is part of the key: the payload names this project's datapoints, so another project with the
    # same image and phrases is another job (else its datapoints would wait in PROPOSING forever).
    key_inputs = {"project": project.pk, "media": media.sha256, "phrases": sorted(phrases), "model": version.name,
                  "thresholds": [config.score_threshold, config.mask_threshold, config.max_instances,
                                 config.dedupe_iou]}
    if refine:
        key_inputs["refine"] = refine["uri"]
    job, created = get_or_create_job(
        PROPOSE_TASK, project=project,
        payload={**payload, "datapoints": {d.concept.phrase: d.pk for d in datapoints}}, key_inputs=key_inputs)
    Datapoint.objects.filter(pk__in=[d.pk for d in datapoints]).update(state=DatapointState.PROPOSING)
    return job, payload, created


def enqueue_proposal_chain(payload: dict, job_id: int):
    from dataengine.annotation.tasks import store_proposals
    from workers.sam3 import propose_masks

    return chain(propose_masks.s(payload).set(queue="gpu"), store_proposals.s(job_id).set(queue="cpu")).apply_async()


def store_proposal_result(job_id: int, result: dict) -> Job:
    """Persist a propose_masks result for its job. Idempotent: a job already done is returned unchanged."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        job.attempts += 1  # every delivery counts, replays included: a looping message shows up here
        if job.state != JobState.QUEUED:
            job.save(update_fields=["attempts", "updated_at"])
            return job
        ids = job.payload.get("datapoints", {})
        datapoints = {d.pk: d for d in Datapoint.objects.select_for_update().select_related("media", "project")
                      .filter(pk__in=ids.values())}
        error = result.get("error")
        if error:
            job.state, job.error = JobState.FAILED, f"{error.get('kind')}: {error.get('message')}"
            for datapoint in datapoints.values():
                if datapoint.state == DatapointState.PROPOSING:
                    fail_datapoint(datapoint, job.error)
            if error.get("kind") == "media" and datapoints:
                media = next(iter(datapoints.values())).media
                media.status, media.error = MediaStatus.FAILED, error.get("message", "")
                media.save(update_fields=["status", "error"])
        else:
            version = ModelVersion.objects.get(name=result["model_version"])
            pairs = [(datapoints[ids[proposal["phrase"]]], proposal) for proposal in result["proposals"]
                     if ids.get(proposal["phrase"]) in datapoints]
            stored = store_proposals(pairs, model_version=version, job=job)
            job.state = JobState.DONE
            job.summary = {"proposals": len(stored), "instances": sum(len(p["instances"]) for p in result["proposals"]),
                           "refined_with": result.get("refined_with")}
        job.save(update_fields=["state", "error", "summary", "attempts", "updated_at"])
    if job.state == JobState.FAILED:
        log.warning("proposal job %s failed: %s", job.pk, job.error)
    return job
