from rest_framework import serializers

from dataengine.concepts.api.serializers import JobSerializer  # noqa: F401  (re-exported for the views)
from dataengine.taxonomy.models import (
    ExpansionPlan,
    HardNegative,
    IngestRun,
    Node,
    OntologySource,
    PlanDomain,
)


class NodeSerializer(serializers.ModelSerializer):
    source = serializers.CharField(read_only=True, help_text="wikidata or wordnet")

    class Meta:
        model = Node
        fields = ["id", "source", "label", "aliases", "description", "sitelinks"]
        read_only_fields = fields


class NodeRefSerializer(serializers.Serializer):
    id = serializers.CharField()
    label = serializers.CharField(allow_null=True)
    depth = serializers.IntegerField(required=False, help_text="Distance from the query node, when it applies")


class NodeDetailSerializer(NodeSerializer):
    parents = NodeRefSerializer(many=True, read_only=True)
    children = NodeRefSerializer(many=True, read_only=True)

    class Meta(NodeSerializer.Meta):
        fields = NodeSerializer.Meta.fields + ["parents", "children"]
        read_only_fields = fields


class RelationSerializer(serializers.Serializer):
    node = serializers.CharField()
    relation = serializers.CharField()
    nodes = NodeRefSerializer(many=True)


class CandidateSerializer(serializers.Serializer):
    node = serializers.CharField()
    label = serializers.CharField(allow_null=True)
    score = serializers.FloatField(help_text="0.45 lexical + 0.45 semantic + 0.10 prior")
    lexical = serializers.FloatField()
    semantic = serializers.FloatField(help_text="MiniLM cosine between the phrase and the node's text")
    prior = serializers.FloatField(help_text="Sense order and popularity")
    match = serializers.CharField(help_text="How the node was found")


class MapRequestSerializer(serializers.Serializer):
    phrase = serializers.CharField(max_length=300)
    limit = serializers.IntegerField(min_value=1, max_value=50, default=5)


class MapResultSerializer(serializers.Serializer):
    phrase = serializers.CharField(help_text="The normalised phrase")
    groundable = serializers.BooleanField()
    reason = serializers.CharField()
    candidates = CandidateSerializer(many=True)


class CleanRequestSerializer(serializers.Serializer):
    phrases = serializers.ListField(child=serializers.CharField(max_length=300), allow_empty=False, max_length=1000)


class CleanedPhraseSerializer(serializers.Serializer):
    input = serializers.CharField()
    phrase = serializers.CharField()
    duplicate_of = serializers.CharField(allow_null=True, help_text="An earlier phrase this one duplicates")
    node = serializers.CharField(allow_null=True)
    groundable = serializers.BooleanField()
    reason = serializers.CharField()


class IngestRunSerializer(serializers.ModelSerializer):
    source = serializers.CharField(read_only=True, help_text="wikidata or wordnet")

    class Meta:
        model = IngestRun
        fields = ["id", "source", "path", "state", "offset", "lines", "entities", "rate", "skip_malformed", "report",
                  "error", "created_at", "updated_at"]
        read_only_fields = fields


class IngestRequestSerializer(serializers.Serializer):
    path = serializers.CharField(max_length=1000, help_text="A .json, .json.gz or .json.bz2 Wikidata dump on the "
                                                            "server")
    skip_malformed = serializers.BooleanField(default=False, help_text="Record malformed lines instead of stopping")


class MediaSourceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["dataset", "folder", "s3"])
    name_prefix = serializers.CharField(required=False, help_text="dataset: media names starting with this")
    path = serializers.CharField(required=False, help_text="folder: a folder on the server")
    bucket = serializers.CharField(required=False, help_text="s3: bucket")
    prefix = serializers.CharField(required=False, allow_blank=True, help_text="s3: key prefix")


class NodeQuotaSerializer(serializers.Serializer):
    datapoints_per_phrase = serializers.IntegerField(min_value=1, required=False)
    images_per_phrase = serializers.IntegerField(min_value=1, required=False)


class DomainSerializer(serializers.ModelSerializer):
    roots = serializers.ListField(child=serializers.CharField(max_length=32), allow_empty=True,
                                  help_text="Subtree root node ids")
    media_sources = MediaSourceSerializer(many=True, required=False)
    node_quotas = serializers.DictField(child=NodeQuotaSerializer(), required=False,
                                       help_text="Per-node overrides, keyed by node id")

    class Meta:
        model = PlanDomain
        fields = ["name", "roots", "max_depth", "max_phrases", "datapoints_per_phrase", "images_per_phrase",
                  "hard_negatives_per_image", "node_quotas", "media_sources"]


class PlanSerializer(serializers.ModelSerializer):
    domains = DomainSerializer(many=True)

    class Meta:
        model = ExpansionPlan
        fields = ["id", "project", "name", "state", "model_good_threshold", "model_good_min_samples",
                  "hard_negative_iou_threshold", "domains", "created_at", "updated_at"]
        read_only_fields = ["id", "project", "state", "created_at", "updated_at"]
        extra_kwargs = {"model_good_threshold": {"min_value": 0.0, "max_value": 1.0},
                        "hard_negative_iou_threshold": {"min_value": 0.0, "max_value": 1.0}}


class NodeCoverageSerializer(serializers.Serializer):
    node = serializers.CharField()
    phrase = serializers.CharField()
    state = serializers.CharField()
    target = serializers.IntegerField()
    datapoints = serializers.IntegerField()
    accepted = serializers.IntegerField()
    positive = serializers.IntegerField()
    negative = serializers.IntegerField()
    open = serializers.IntegerField()
    rejected = serializers.IntegerField()
    progress = serializers.FloatField()


class DomainCoverageSerializer(serializers.Serializer):
    name = serializers.CharField()
    roots = serializers.ListField(child=serializers.CharField())
    phrases = serializers.IntegerField()
    phrases_covered = serializers.IntegerField(help_text="Phrases with at least one accepted positive")
    phrases_done = serializers.IntegerField(help_text="Phrases stopped: enough data or the model is good")
    datapoints = serializers.IntegerField()
    accepted = serializers.IntegerField()
    target = serializers.IntegerField()
    coverage = serializers.FloatField()
    nodes = NodeCoverageSerializer(many=True)


class CoverageSerializer(serializers.Serializer):
    plan = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.CharField()
    domains = DomainCoverageSerializer(many=True)


class MineRequestSerializer(serializers.Serializer):
    datapoints = serializers.ListField(child=serializers.IntegerField(), required=False,
                                       help_text="Only these verified positives (default: all of them)")


class HardNegativeSerializer(serializers.ModelSerializer):
    class Meta:
        model = HardNegative
        fields = ["id", "positive", "node_id", "phrase", "route", "proposal_reason", "overlap", "instances", "kept",
                  "decision", "model_version", "datapoint", "created_at"]
        read_only_fields = fields


SOURCES = OntologySource.values
