from rest_framework import serializers

from dataengine.engine.models import ModelKind, ModelVersion, Snapshot


class ModelVersionSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="name", queryset=ModelVersion.objects.all(), required=False,
                                          allow_null=True)
    kind = serializers.ChoiceField(choices=ModelKind.choices, default=ModelKind.SAM3)
    snapshot = serializers.PrimaryKeyRelatedField(queryset=Snapshot.objects.all(), required=False, allow_null=True,
                                                  help_text="The snapshot (training data) it was made from.")

    class Meta:
        model = ModelVersion
        fields = ["id", "name", "kind", "uri", "parent", "snapshot", "status", "manifest", "metrics", "created_at"]
        read_only_fields = ["id", "status", "created_at"]


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Snapshot
        fields = ["id", "project", "storage_name", "sha256", "format", "counts", "code_version", "created_at"]
        read_only_fields = fields


class PromoteSerializer(serializers.Serializer):
    model_version = serializers.SlugRelatedField(slug_field="name", queryset=ModelVersion.objects.all())


class RollbackSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ModelKind.choices, default=ModelKind.SAM3,
                                   help_text="Which slot to roll back: sam3 (active model) or verifier.")


class ModelHistorySerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The audit event.")
    action = serializers.CharField(help_text="promote or rollback")
    kind = serializers.ChoiceField(choices=ModelKind.choices, allow_null=True)
    version = serializers.CharField(allow_null=True, help_text="The version deployed by this event.")
    previous = serializers.CharField(allow_null=True, help_text="The version it replaced.")
    actor = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class GoldImportSerializer(serializers.Serializer):
    document = serializers.JSONField(help_text="An SA-Co gold JSON document (images, annotations).")


class LowScorePhrasesSerializer(serializers.Serializer):
    max_f1 = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.5,
                                    help_text="A phrase whose gold F1 at IoU 0.5 is below this is failure-prone.")
    min_pairs = serializers.IntegerField(min_value=1, default=3, help_text="Gold pairs a phrase needs to be judged.")


class CocoResultSerializer(serializers.Serializer):
    image_id = serializers.IntegerField()
    category_id = serializers.IntegerField()
    segmentation = serializers.JSONField()
    bbox = serializers.ListField(child=serializers.FloatField())
    score = serializers.FloatField()
