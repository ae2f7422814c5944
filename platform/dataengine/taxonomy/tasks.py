"""Thin Celery adapters for the ontology (cpu queue, Django-configured worker). The logic is in services."""
from __future__ import annotations

from workers.app import app


@app.task(name="taxonomy.ingest_dump.v1", acks_late=True)
def ingest_dump_task(run_id: int) -> dict:
    """Resumable: a redelivered task continues from the run's last committed offset."""
    from dataengine.taxonomy.services import run_dump_ingest

    run = run_dump_ingest(run_id)
    return {"run": run.pk, "state": run.state, "entities": run.entities}


@app.task(name="taxonomy.apply_plan.v1", acks_late=True)
def apply_plan_task(job_id: int) -> dict:
    from dataengine.taxonomy.services import run_plan_job

    job = run_plan_job(job_id)
    return {"job": job.pk, "state": job.state}


@app.task(name="taxonomy.mine_hard_negatives.v1", acks_late=True)
def mine_hard_negatives_task(job_id: int) -> dict:
    from dataengine.taxonomy.services import mine_hard_negatives

    job = mine_hard_negatives(job_id)
    return {"job": job.pk, "state": job.state, **job.summary}
