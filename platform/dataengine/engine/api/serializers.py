from rest_framework import serializers

from dataengine.engine.models import ModelKind, ModelVersion, Snapshot


class ModelVersionSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="name", queryset=ModelVersion.objects.all(), required=False,
                                          allow_null=True)
    kind = serializers.ChoiceField(choices=ModelKind.choices, default=ModelKind.SAM3)

    class Meta:
        model = ModelVersion
        fields = ["id", "name", "kind", "uri", "parent", "status", "manifest", "metrics", "created_at"]
        read_only_fields = ["id", "status", "created_at"]


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Snapshot
        fields = ["id", "project", "storage_name", "sha256", "format", "counts", "code_version", "created_at"]
        read_only_fields = fields


class PromoteSerializer(serializers.Serializer):
    model_version = serializers.SlugRelatedField(slug_field="name", queryset=ModelVersion.objects.all())


class GoldImportSerializer(serializers.Serializer):
    document = serializers.JSONField(help_text="An SA-Co gold JSON document (images, annotations).")


class CocoResultSerializer(serializers.Serializer):
    image_id = serializers.IntegerField()
    category_id = serializers.IntegerField()
    segmentation = serializers.JSONField()
    bbox = serializers.ListField(child=serializers.FloatField())
    score = serializers.FloatField()
