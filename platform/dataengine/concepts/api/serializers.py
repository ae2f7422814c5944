from rest_framework import serializers

from dataengine.concepts.models import Concept, Datapoint, DatapointSource


class ConceptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Concept
        fields = ["id", "phrase", "ontology_node", "created_at"]
        read_only_fields = ["id", "created_at"]


class DatapointSerializer(serializers.ModelSerializer):
    phrase = serializers.CharField(source="concept.phrase", read_only=True)

    class Meta:
        model = Datapoint
        fields = ["id", "project", "media", "phrase", "source", "phase", "state", "priority",
                  "is_instance_exhaustive", "is_pixel_exhaustive", "final_label", "reason", "auto_accepted",
                  "failure_signs", "is_gold", "revision", "created_at", "updated_at"]
        read_only_fields = fields


class DatapointCreateSerializer(serializers.Serializer):
    media = serializers.ListField(child=serializers.IntegerField(), allow_empty=False,
                                  help_text="Media item ids of this project.")
    phrases = serializers.ListField(child=serializers.CharField(max_length=300), allow_empty=False,
                                    help_text="Noun phrases; every phrase is paired with every media item.")
    source = serializers.ChoiceField(choices=DatapointSource.choices, default=DatapointSource.MANUAL)


class ProposalRequestSerializer(serializers.Serializer):
    datapoints = serializers.ListField(child=serializers.IntegerField(), required=False,
                                       help_text="Only these pending datapoints (default: all pending).")


class JobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    task_name = serializers.CharField()
    state = serializers.CharField()
    error = serializers.CharField()
