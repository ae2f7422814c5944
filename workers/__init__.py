"""Celery app and the pure compute tasks. Never imports Django or the platform."""
