"""The Celery app, configured from the environment (workers/config.py), importable without Django.

Queues are named by resource: ``cpu`` (orchestration, store_* tasks), ``gpu`` (SAM 3), ``llm`` (verifiers),
``interactive`` (click-to-segment, on GPU workers beside ``gpu``), ``train`` (fine-tuning). A GPU worker is ``celery -A workers.app worker -Q gpu --prefetch-multiplier 1``.
"""
from __future__ import annotations

from celery import Celery
from kombu import Queue

from workers.config import CONFIG

QUEUES = ("cpu", "gpu", "interactive", "llm", "train")

app = Celery("dataengine")
app.conf.update(
    broker_url=CONFIG.broker_url,
    result_backend=CONFIG.result_backend,
    task_always_eager=CONFIG.always_eager,
    task_eager_propagates=True,
    task_queues=[Queue(name) for name in QUEUES],
    task_default_queue="cpu",
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Tasks are idempotent (a Job row keyed by their inputs), so a task whose worker died is redelivered.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    task_routes={
        "sam3.segment_click.*": {"queue": "interactive"},  # latency-bound: never behind a batch of proposals
        "sam3.*": {"queue": "gpu"},
        "verifiers.*": {"queue": "llm"},
        "train.*": {"queue": "train"},
    },
)
# Pure compute tasks register here; platform tasks register from the Django-configured worker.
app.conf.imports = ("workers.sam3", "workers.interactive", "workers.verifiers", "workers.train")
