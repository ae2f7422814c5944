"""Concepts (normalised noun phrases) and datapoints (media x concept), the unit of work."""
from django.db import models


class Concept(models.Model):
    phrase = models.CharField(max_length=300, unique=True)
    ontology_node = models.CharField(max_length=64, blank=True, help_text="e.g. wn:13865904 or Q146")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.phrase


class DatapointSource(models.TextChoices):
    ONTOLOGY = "ontology"
    CAPTION = "caption"
    MANUAL = "manual"
    HARD_NEGATIVE = "hard_negative"
    GOLD = "gold"


class DatapointState(models.TextChoices):
    PENDING = "pending", "waiting for a proposal"
    PROPOSING = "proposing"
    AI_VERIFICATION = "ai_verification", "with the AI verifiers (Phase 2+)"
    MASK_VERIFICATION = "mask_verification"
    EXHAUSTIVITY_VERIFICATION = "exhaustivity_verification"
    CORRECTION = "correction"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"


class FinalLabel(models.TextChoices):
    NONE = "", "not decided"
    POSITIVE = "positive"
    NEGATIVE = "negative"
    REJECTED = "rejected", "rejected as vague, ungroundable or flagged"


class Datapoint(models.Model):
    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="datapoints")
    media = models.ForeignKey("media.MediaItem", on_delete=models.CASCADE, related_name="datapoints")
    concept = models.ForeignKey(Concept, on_delete=models.PROTECT, related_name="datapoints")
    source = models.CharField(max_length=16, choices=DatapointSource.choices, default=DatapointSource.MANUAL)
    phase = models.PositiveSmallIntegerField(default=1)
    state = models.CharField(max_length=32, choices=DatapointState.choices, default=DatapointState.PENDING)
    priority = models.IntegerField(default=0)
    is_instance_exhaustive = models.BooleanField(null=True, blank=True)
    is_pixel_exhaustive = models.BooleanField(null=True, blank=True)
    final_label = models.CharField(max_length=16, choices=FinalLabel.choices, default=FinalLabel.NONE, blank=True)
    reason = models.TextField(blank=True, help_text="Why it was rejected or failed.")
    is_gold = models.BooleanField(default=False, help_text="Part of the project's frozen gold set.")
    auto_accepted = models.BooleanField(default=False, help_text="Accepted by the AI verifiers without a human.")
    failure_signs = models.JSONField(default=list, blank=True,
                                     help_text="Phase 2+: why routing thinks the AI may be wrong here (codes).")
    # Bumped on every change of the datapoint's masks: a submission based on an older revision is stale.
    revision = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "media", "concept", "is_gold"], name="one_datapoint_per_pair")
        ]
        indexes = [models.Index(fields=["project", "state"])]

    def __str__(self) -> str:
        return f"{self.concept} @ {self.media}"
