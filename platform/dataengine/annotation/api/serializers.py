from django.urls import reverse
from rest_framework import serializers

from dataengine.annotation.models import (
    CorrectionOutcome,
    EVOption,
    HumanTask,
    Mask,
    MaskState,
    MVOption,
    ReviewDecision,
    TaskKind,
)
from dataengine.concepts.models import Datapoint
from dataengine.media.models import MediaItem


class RLEField(serializers.JSONField):
    """COCO compressed RLE {"size": [h, w], "counts": str}; validated against the image by the service."""


class MaskSerializer(serializers.ModelSerializer):
    rle = RLEField()

    class Meta:
        model = Mask
        fields = ["id", "rle", "bbox", "area", "iscrowd", "score", "source", "state"]
        read_only_fields = fields


class TaskMediaSerializer(serializers.ModelSerializer):
    file_url = serializers.SerializerMethodField()

    class Meta:
        model = MediaItem
        fields = ["id", "name", "sha256", "width", "height", "file_url"]

    def get_file_url(self, item) -> str:
        return reverse("media-file", args=[item.pk])


class TaskDatapointSerializer(serializers.ModelSerializer):
    phrase = serializers.CharField(source="concept.phrase")
    media = TaskMediaSerializer()

    class Meta:
        model = Datapoint
        fields = ["id", "phrase", "revision", "state", "media"]


class TaskSerializer(serializers.ModelSerializer):
    datapoint = TaskDatapointSerializer()
    mask = MaskSerializer(allow_null=True, help_text="The mask to verify (mask_verification tasks).")
    masks = serializers.SerializerMethodField(help_text="The datapoint's currently accepted masks.")
    candidates = serializers.SerializerMethodField(
        help_text="Correction tasks: the datapoint's rejected masks, which the final set may restore or edit by id "
                  "(empty for other kinds).")

    class Meta:
        model = HumanTask
        fields = ["id", "kind", "project", "state", "priority", "lease_token", "lease_expires_at", "attempts",
                  "datapoint", "mask", "masks", "candidates"]
        read_only_fields = fields

    def get_masks(self, task) -> list[dict]:
        accepted = Mask.objects.filter(datapoint_id=task.datapoint_id, state=MaskState.ACCEPTED).order_by("id")
        return MaskSerializer(accepted, many=True).data

    def get_candidates(self, task) -> list[dict]:
        if task.kind != TaskKind.CORRECTION:
            return []
        rejected = Mask.objects.filter(datapoint_id=task.datapoint_id, state=MaskState.REJECTED).order_by("id")
        return MaskSerializer(rejected, many=True).data


class NextTaskSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=TaskKind.choices)


class LeaseSerializer(serializers.Serializer):
    lease_token = serializers.IntegerField(min_value=0)


class SubmissionSerializer(LeaseSerializer):
    seconds = serializers.FloatField(min_value=0, max_value=24 * 3600, help_text="Time spent on the decision.")


class MaskVerificationSerializer(SubmissionSerializer):
    decision = serializers.ChoiceField(choices=MVOption.choices)


class ExhaustivityVerificationSerializer(SubmissionSerializer):
    decision = serializers.ChoiceField(choices=EVOption.choices)


class MaskInputSerializer(serializers.Serializer):
    mask_id = serializers.IntegerField(required=False, allow_null=True, help_text="Keep (or, with rle, edit) this mask.")
    rle = RLEField(required=False, allow_null=True, help_text="A new or edited mask as COCO compressed RLE.")
    iscrowd = serializers.BooleanField(default=False, help_text="A group mask of inseparable instances.")


class ReviewSerializer(SubmissionSerializer):
    decision = serializers.ChoiceField(choices=ReviewDecision.choices)


class VerifierPrecisionSerializer(serializers.Serializer):
    verifier_version = serializers.CharField()
    reviewed = serializers.IntegerField()
    confirmed = serializers.IntegerField()
    precision = serializers.FloatField()
    auto_accepted_in_project = serializers.IntegerField()


class CorrectionSerializer(SubmissionSerializer):
    datapoint_revision = serializers.IntegerField(min_value=0)
    outcome = serializers.ChoiceField(choices=CorrectionOutcome.choices)
    masks = MaskInputSerializer(many=True, default=list, help_text="The complete final set of masks.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class SubmissionResultSerializer(serializers.Serializer):
    task = serializers.IntegerField()
    task_state = serializers.CharField()
    datapoint = serializers.IntegerField()
    datapoint_state = serializers.CharField()
    final_label = serializers.CharField()
