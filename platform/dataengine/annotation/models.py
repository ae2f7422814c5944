"""Proposals, masks, verdicts and the human task queue."""
from django.conf import settings
from django.db import models


class Proposal(models.Model):
    """One model run on one datapoint."""

    datapoint = models.ForeignKey("concepts.Datapoint", on_delete=models.CASCADE, related_name="proposals")
    model_version = models.ForeignKey("engine.ModelVersion", on_delete=models.PROTECT, related_name="proposals")
    job = models.ForeignKey("engine.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    presence_score = models.FloatField()
    instances = models.JSONField(help_text="[{rle, box_xyxy, score}] as the model returned them")
    truncated_phrase = models.BooleanField(default=False)
    best_beyond_cap = models.FloatField(
        null=True, blank=True,
        help_text="The best score among the instances the project's max_instances left out (0: none; null: not "
                  "recorded, as before this field): a verifier witness (verifiers.calibration.SAM3_WITNESSES)")
    semantic_rle = models.JSONField(
        null=True, blank=True,
        help_text="SAM 3's semantic (phrase) mask, COCO RLE at the image size (null: not recorded): the verifier "
                  "witness sam3_uncovered is its share outside the accepted masks (verifiers.calibration)")
    created_at = models.DateTimeField(auto_now_add=True)


class MaskSource(models.TextChoices):
    MODEL = "model"
    HUMAN = "human"
    IMPORTED = "imported"


class MaskState(models.TextChoices):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DELETED = "deleted", "removed in correction"


class Mask(models.Model):
    datapoint = models.ForeignKey("concepts.Datapoint", on_delete=models.CASCADE, related_name="masks")
    rle = models.JSONField(help_text="COCO compressed RLE {size: [h, w], counts}")
    bbox = models.JSONField(help_text="[x, y, w, h] in pixels")
    area = models.PositiveIntegerField()
    iscrowd = models.BooleanField(default=False, help_text="A group mask of inseparable instances.")
    source = models.CharField(max_length=8, choices=MaskSource.choices)
    state = models.CharField(max_length=8, choices=MaskState.choices, default=MaskState.PROPOSED)
    score = models.FloatField(null=True, blank=True)
    proposal = models.ForeignKey(Proposal, null=True, blank=True, on_delete=models.SET_NULL, related_name="masks")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    replaces = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class VerdictKind(models.TextChoices):
    MASK = "mv", "mask verification"
    EXHAUSTIVITY = "ev", "exhaustivity verification"
    CORRECTION = "correction"
    REVIEW = "review", "human review of an AI-accepted datapoint"


class MVOption(models.TextChoices):
    """The paper's mask-verification options (docs: data engine §3)."""

    ACCEPT = "accept"
    ACCEPT_AS_TEXT = "accept_as_text"
    FLAG_LABEL = "flag_label"
    WHOLE_IMAGE = "whole_image"
    REJECT = "reject"


class EVOption(models.TextChoices):
    """The paper's exhaustivity-verification options."""

    ACCEPT = "accept"
    REJECT = "reject"
    REJECT_UNSEPARATED = "reject_unseparated", "reject but unseparated"
    FLAG_LABEL = "flag_label"
    WHOLE_IMAGE = "whole_image"
    UNGROUNDABLE = "ungroundable", "ungroundable / vague / unsure"


class ReviewDecision(models.TextChoices):
    CONFIRM = "confirm", "the AI-accepted datapoint is right"
    REJECT = "reject", "the AI accepted an error"


class CorrectionOutcome(models.TextChoices):
    COMPLETE = "complete", "every instance is masked"
    REJECT_PHRASE = "reject_phrase", "phrase is vague or ungroundable"
    CANNOT_COMPLETE = "cannot_complete"


class Verdict(models.Model):
    kind = models.CharField(max_length=16, choices=VerdictKind.choices)
    datapoint = models.ForeignKey("concepts.Datapoint", on_delete=models.CASCADE, related_name="verdicts")
    mask = models.ForeignKey(Mask, null=True, blank=True, on_delete=models.CASCADE, related_name="verdicts")
    task = models.ForeignKey("HumanTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="verdicts")
    decision = models.CharField(max_length=32)
    by_ai = models.BooleanField(default=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    verifier_version = models.ForeignKey(
        "engine.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="verdicts"
    )
    probabilities = models.JSONField(default=dict, blank=True, help_text="AI verdicts: P(option) for all options")
    template_version = models.CharField(max_length=32, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Human time spent on the decision.")
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class TaskKind(models.TextChoices):
    MASK_VERIFICATION = "mask_verification"
    EXHAUSTIVITY_VERIFICATION = "exhaustivity_verification"
    CORRECTION = "correction"
    REVIEW = "review"


class TaskState(models.TextChoices):
    QUEUED = "queued"
    LEASED = "leased"
    DONE = "done"
    CANCELLED = "cancelled"


class HumanTask(models.Model):
    """The queue itself: kept narrow (no JSON) so that leasing stays an index walk."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="tasks")
    kind = models.CharField(max_length=32, choices=TaskKind.choices)
    datapoint = models.ForeignKey("concepts.Datapoint", on_delete=models.CASCADE, related_name="tasks")
    mask = models.ForeignKey(Mask, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks")
    priority = models.IntegerField(default=0)
    state = models.CharField(max_length=16, choices=TaskState.choices, default=TaskState.QUEUED)
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="held_tasks"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Incremented on every lease: a submission carrying an older token is stale (409).
    lease_token = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(
                fields=["project", "kind", "-priority", "id"],
                name="task_queue_head",
                condition=models.Q(state="queued"),
            ),
            models.Index(fields=["lease_expires_at"], name="task_lease_expiry", condition=models.Q(state="leased")),
            models.Index(fields=["holder", "project", "kind"], name="task_holder", condition=models.Q(state="leased")),
            models.Index(fields=["datapoint", "state"], name="task_datapoint"),
        ]
