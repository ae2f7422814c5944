from django.apps import AppConfig


class TaxonomyConfig(AppConfig):
    """The Django face of the ``ontology/`` library: its tables, API, admin and cpu-queue jobs."""

    name = "dataengine.taxonomy"
    label = "taxonomy"
    verbose_name = "Ontology"

    def ready(self) -> None:
        # Register the cpu-queue tasks with the shared Celery app wherever Django runs (web and worker).
        from dataengine.taxonomy import tasks  # noqa: F401
