"""Thin Celery adapters for the annotation app (cpu queue, Django-configured worker)."""
from __future__ import annotations

from workers.app import app


@app.task(name="annotation.store_proposals.v1", acks_late=True)
def store_proposals(result: dict, job_id: int) -> dict:
    from dataengine.annotation.proposing import store_proposal_result

    job = store_proposal_result(job_id, result)
    return {"job": job.pk, "state": job.state}


@app.task(name="annotation.store_verdicts.v1", acks_late=True)
def store_verdicts(result: dict, job_id: int) -> dict:
    from dataengine.annotation.verifying import store_verifier_result

    job = store_verifier_result(job_id, result)
    return {"job": job.pk, "state": job.state}


@app.task(name="annotation.requeue_expired_leases.v1")
def requeue_expired_leases() -> int:
    from dataengine.annotation.services import requeue_expired_leases as requeue

    return requeue()
