"""Projects, memberships and roles."""
from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    DATA_LEAD = "data_lead"
    ADMIN = "admin"


class Project(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    phase = models.PositiveSmallIntegerField(default=1, choices=[(p, f"Phase {p}") for p in (1, 2, 3, 4)])
    # Routing thresholds and quotas; see engine.config.ProjectConfig for the keys and defaults.
    config = models.JSONField(default=dict, blank=True)
    active_model = models.ForeignKey(
        "engine.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    active_verifier = models.ForeignKey(
        "engine.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The MV/EV verifier used from Phase 2 on.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="one_role_per_project")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} in {self.project}"
