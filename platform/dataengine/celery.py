"""The Django-configured Celery worker: ``celery -A dataengine.celery worker -Q cpu``.

It is the same app as workers/app.py, with Django set up and the platform's tasks registered.
"""
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dataengine.settings.base")
django.setup()

from workers.app import app  # noqa: E402

app.conf.imports = (*app.conf.imports, "dataengine.annotation.tasks")
app.conf.beat_schedule = {
    "requeue-expired-leases": {"task": "annotation.requeue_expired_leases.v1", "schedule": 30.0},
}
import dataengine.annotation.tasks  # noqa: E402,F401

__all__ = ["app"]
