"""Model registry, snapshots, background jobs and the audit log."""
from django.conf import settings
from django.db import models


class ModelKind(models.TextChoices):
    SAM3 = "sam3"
    VERIFIER = "verifier", "MV + EV verifier (one base, an adapter per task)"
    MASK_VERIFIER = "mask_verifier"
    EXHAUSTIVITY_VERIFIER = "exhaustivity_verifier"


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate"
    PROMOTED = "promoted"
    RETIRED = "retired"


class ModelVersion(models.Model):
    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=ModelKind.choices, default=ModelKind.SAM3)
    uri = models.CharField(max_length=1000, help_text="Folder, s3:// prefix, or preset:<name> for a built model")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    snapshot = models.ForeignKey("engine.Snapshot", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="model_versions", help_text="The training data it was made from.")
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE)
    manifest = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Snapshot(models.Model):
    """A frozen SA-Co export of a project's accepted data, in storage."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="snapshots")
    storage_name = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    format = models.CharField(max_length=16, default="sa-co")
    counts = models.JSONField(default=dict)
    code_version = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)


class JobState(models.TextChoices):
    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"


class Job(models.Model):
    """One row per background job; the key makes a repeated request (or a replayed task) the same job."""

    key = models.CharField(max_length=64, unique=True, help_text="sha256 of the task name and its inputs")
    task_name = models.CharField(max_length=100)
    project = models.ForeignKey("accounts.Project", null=True, blank=True, on_delete=models.CASCADE)
    state = models.CharField(max_length=8, choices=JobState.choices, default=JobState.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    payload = models.JSONField(default=dict)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class AuditEvent(models.Model):
    project = models.ForeignKey("accounts.Project", null=True, blank=True, on_delete=models.CASCADE)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"])]
