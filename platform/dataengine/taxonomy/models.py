"""Ontology tables: nodes and edges (Wikidata or WordNet), ingest runs, node embeddings, expansion plans and
hard-negative decisions. Only dataengine.taxonomy reads or writes them (the library stays Django-free).

Edges name nodes by id without a foreign key: a dump lists a child before its parent, and a parent may lie
outside the ingested part (the taxonomy snapshot then treats it as a node without a label).
"""
from django.conf import settings
from django.db import models


class OntologySource(models.TextChoices):
    WIKIDATA = "wikidata"
    WORDNET = "wordnet"


class Node(models.Model):
    id = models.CharField(primary_key=True, max_length=32, help_text="Q146 (Wikidata) or wn:02123045 (WordNet)")
    source = models.CharField(max_length=8, choices=OntologySource.choices)
    label = models.CharField(max_length=500, null=True, blank=True, help_text="English label; null when none")
    aliases = models.JSONField(default=list, blank=True)
    description = models.TextField(null=True, blank=True)
    sitelinks = models.IntegerField(default=0, help_text="Popularity: Wikidata sitelinks / WordNet SemCor count")

    class Meta:
        indexes = [models.Index(fields=["label"], name="taxonomy_node_label")]

    def __str__(self) -> str:
        return f"{self.id} {self.label or ''}".strip()


class EdgeKind(models.TextChoices):
    SUBCLASS_OF = "s", "subclass of"
    INSTANCE_OF = "i", "instance of"


class Edge(models.Model):
    child = models.CharField(max_length=32)
    parent = models.CharField(max_length=32)
    kind = models.CharField(max_length=1, choices=EdgeKind.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["child", "parent", "kind"], name="taxonomy_edge_unique")]
        indexes = [models.Index(fields=["parent"], name="taxonomy_edge_parent")]


class IngestState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed", "failed (progress kept; resumable)"


class IngestRun(models.Model):
    """One dump (or WordNet folder) being read into Node/Edge; ``offset`` is the last committed resume point."""

    source = models.CharField(max_length=8, choices=OntologySource.choices)
    path = models.CharField(max_length=1000)
    state = models.CharField(max_length=8, choices=IngestState.choices, default=IngestState.QUEUED)
    offset = models.BigIntegerField(default=0, help_text="Decompressed bytes committed (resume point)")
    lines = models.BigIntegerField(default=0)
    entities = models.BigIntegerField(default=0)
    rate = models.FloatField(default=0.0, help_text="Entities per second of the latest run")
    skip_malformed = models.BooleanField(default=False)
    report = models.JSONField(default=dict, blank=True, help_text="Skipped properties/lexemes, malformed, truncated")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class NodeEmbedding(models.Model):
    node_id = models.CharField(max_length=32)
    model = models.CharField(max_length=64)
    vector = models.BinaryField(help_text="float32, L2-normalised")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["node_id", "model"], name="taxonomy_embedding_unique")]


class PlanState(models.TextChoices):
    DRAFT = "draft"
    ACTIVE = "active"
    CLOSED = "closed"


class ExpansionPlan(models.Model):
    """A data lead's plan to grow a project into new domains (subtrees of the ontology)."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="expansion_plans")
    name = models.CharField(max_length=200)
    state = models.CharField(max_length=8, choices=PlanState.choices, default=PlanState.DRAFT)
    model_good_threshold = models.FloatField(
        default=0.9, help_text="Stop a phrase when this share of its accepted datapoints needed no human mask edit")
    model_good_min_samples = models.PositiveIntegerField(default=10)
    hard_negative_iou_threshold = models.FloatField(
        default=0.5, help_text="A hard negative is kept when SAM 3's masks for it overlap the positive's this much")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="taxonomy_plan_name")]

    def __str__(self) -> str:
        return self.name


class PlanDomain(models.Model):
    plan = models.ForeignKey(ExpansionPlan, on_delete=models.CASCADE, related_name="domains")
    name = models.CharField(max_length=200)
    roots = models.JSONField(help_text="Subtree root node ids")
    max_depth = models.PositiveIntegerField(null=True, blank=True, help_text="Levels below the roots (null: all)")
    max_phrases = models.PositiveIntegerField(default=200)
    datapoints_per_phrase = models.PositiveIntegerField(default=20, help_text="Accepted datapoints that are enough")
    images_per_phrase = models.PositiveIntegerField(default=5, help_text="Images paired with a phrase per round")
    hard_negatives_per_image = models.PositiveIntegerField(default=5)
    node_quotas = models.JSONField(default=dict, blank=True,
                                   help_text='{"<node id>": {"datapoints_per_phrase": n, "images_per_phrase": m}}')
    media_sources = models.JSONField(default=list, blank=True, help_text="[{kind: dataset|folder|s3, ...}]")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plan", "name"], name="taxonomy_domain_name")]


class PhraseState(models.TextChoices):
    ACTIVE = "active"
    ENOUGH_DATA = "enough_data", "stopped: enough accepted data"
    MODEL_GOOD = "model_good", "stopped: the model is already good at it"
    NO_MEDIA = "no_media", "waiting: no unused media left"


class PlanPhrase(models.Model):
    """One node of a domain as a phrase, with its quota and whether the engine still adds data for it."""

    domain = models.ForeignKey(PlanDomain, on_delete=models.CASCADE, related_name="phrases")
    node_id = models.CharField(max_length=32)
    concept = models.ForeignKey("concepts.Concept", on_delete=models.PROTECT, related_name="+")
    target_datapoints = models.PositiveIntegerField()
    images_per_round = models.PositiveIntegerField()
    state = models.CharField(max_length=12, choices=PhraseState.choices, default=PhraseState.ACTIVE)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["domain", "node_id"], name="taxonomy_phrase_node")]


class NegativeRoute(models.TextChoices):
    SIBLING = "sibling"
    COUSIN = "cousin"
    UNCLE = "uncle"
    EMBEDDING = "embedding"


class HardNegative(models.Model):
    """One hard-negative candidate for a verified positive, kept or not, and why."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="+")
    positive = models.ForeignKey("concepts.Datapoint", on_delete=models.CASCADE, related_name="+")
    node_id = models.CharField(max_length=32)
    phrase = models.CharField(max_length=300)
    route = models.CharField(max_length=10, choices=NegativeRoute.choices)
    proposal_reason = models.CharField(max_length=500, help_text="Why it was proposed (taxonomy or embedding)")
    overlap = models.FloatField(help_text="IoU of SAM 3's masks for it with the positive's masks")
    instances = models.PositiveIntegerField(default=0)
    kept = models.BooleanField()
    decision = models.CharField(max_length=500, help_text="Why it was kept or discarded")
    model_version = models.CharField(max_length=200)
    datapoint = models.ForeignKey("concepts.Datapoint", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+", help_text="The negative datapoint sent to EV")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["positive", "phrase"], name="taxonomy_negative_once")]
