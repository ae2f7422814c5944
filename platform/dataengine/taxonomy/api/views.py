from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from dataengine.accounts.services import LEADS, access_project
from dataengine.errors import InvalidInput, NotFound
from dataengine.taxonomy import queries, services
from dataengine.taxonomy.api.serializers import (
    CleanedPhraseSerializer,
    CleanRequestSerializer,
    CoverageSerializer,
    HardNegativeSerializer,
    IngestRequestSerializer,
    IngestRunSerializer,
    JobSerializer,
    MapRequestSerializer,
    MapResultSerializer,
    MineRequestSerializer,
    NodeDetailSerializer,
    NodeSerializer,
    PlanSerializer,
    RelationSerializer,
)
from dataengine.taxonomy.models import ExpansionPlan, HardNegative, IngestRun, Node, OntologySource

MAX_RESULTS = 1000


def _int_param(request, name: str, default: int | None, *, maximum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer") from None
    if value < 0 or (maximum is not None and value > maximum):
        raise InvalidInput(f"{name} must be between 0 and {maximum}")
    return value


def _refs(ids, depths: dict | None = None) -> list[dict]:
    labels = queries.labels_of(ids)
    return [{"id": i, "label": labels[i], **({"depth": depths[i]} if depths else {})} for i in ids]


class NodeList(generics.ListAPIView):
    """Ontology nodes; ?q= finds labels starting with the text (case-insensitive), ?source= filters."""

    serializer_class = NodeSerializer

    def get_queryset(self):
        queryset = Node.objects.order_by("id")
        source = self.request.query_params.get("source")
        if source:
            if source not in OntologySource.values:
                raise InvalidInput(f"source must be one of {', '.join(OntologySource.values)}")
            queryset = queryset.filter(source=source)
        text = self.request.query_params.get("q")
        if text:
            queryset = queryset.filter(label__istartswith=text.strip())
        return queryset

    @extend_schema(parameters=[OpenApiParameter("q", str), OpenApiParameter("source", str,
                                                                            enum=OntologySource.values)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class NodeDetail(APIView):
    @extend_schema(responses=NodeDetailSerializer)
    def get(self, request, node_id: str):
        node = queries.get_node(node_id)
        taxonomy = queries.current_taxonomy()
        data = NodeSerializer(node).data
        data["parents"] = _refs(queries.run_query(taxonomy, "parents", node_id))
        data["children"] = _refs(queries.run_query(taxonomy, "children", node_id)[:MAX_RESULTS])
        return Response(data)


class _Relation(APIView):
    relation = ""
    walks = False  # ancestors/descendants take max_depth and limit and report depths

    def get(self, request, node_id: str):
        taxonomy = queries.current_taxonomy()
        if self.walks:
            result = queries.run_query(taxonomy, self.relation, node_id,
                                       max_depth=_int_param(request, "max_depth", None),
                                       limit=_int_param(request, "limit", MAX_RESULTS, maximum=MAX_RESULTS))
            nodes = _refs(list(result), result)
        else:
            nodes = _refs(queries.run_query(taxonomy, self.relation, node_id)[:MAX_RESULTS])
        return Response({"node": node_id, "relation": self.relation, "nodes": nodes})


def _relation_view(relation: str, walks: bool, doc: str):
    params = [OpenApiParameter("max_depth", int), OpenApiParameter("limit", int)] if walks else []

    @extend_schema(responses=RelationSerializer, parameters=params, operation_id=f"ontology_{relation}")
    def get(self, request, node_id: str):
        return _Relation.get(self, request, node_id)

    name = f"{relation.title().replace('_', '')}View"
    return type(name, (_Relation,), {"relation": relation, "walks": walks, "__doc__": doc, "get": get})


RELATION_VIEWS = {
    "ancestors": _relation_view("ancestors", True, "Ancestors with their shortest distance (?max_depth, ?limit)."),
    "descendants": _relation_view("descendants", True, "Descendants, nearest first (?max_depth, ?limit ≤ 1000)."),
    "siblings": _relation_view("siblings", False, "Other children of the node's parents."),
    "cousins": _relation_view("cousins", False, "Children of the node's uncles."),
    "uncles": _relation_view("uncles", False, "Siblings of the node's parents."),
    "path": _relation_view("path_to_root", False, "A shortest path from the node up to a root."),
}


class LowestCommonAncestors(APIView):
    @extend_schema(parameters=[OpenApiParameter("a", str, required=True), OpenApiParameter("b", str, required=True)],
                   responses=RelationSerializer)
    def get(self, request):
        a, b = request.query_params.get("a"), request.query_params.get("b")
        if not a or not b:
            raise InvalidInput("give two node ids as ?a= and ?b=")
        taxonomy = queries.current_taxonomy()
        queries.check_in_taxonomy(taxonomy, [a, b])
        return Response({"node": f"{a},{b}", "relation": "lowest_common_ancestors",
                         "nodes": _refs(taxonomy.lowest_common_ancestors(a, b))})


class MapPhrase(APIView):
    """Normalise a phrase and map it to scored ontology nodes (lexical + MiniLM)."""

    @extend_schema(request=MapRequestSerializer, responses=MapResultSerializer)
    def post(self, request):
        serializer = MapRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        mapped = services.map_phrase(serializer.validated_data["phrase"], limit=serializer.validated_data["limit"])
        return Response({"phrase": mapped.phrase, "groundable": mapped.groundable, "reason": mapped.reason,
                         "candidates": [c.as_dict() for c in mapped.candidates]})


class CleanPhrases(APIView):
    """Normalise phrases, mark near-duplicates and ungroundable ones."""

    @extend_schema(request=CleanRequestSerializer, responses=CleanedPhraseSerializer(many=True))
    def post(self, request):
        serializer = CleanRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(services.clean_phrases(serializer.validated_data["phrases"]))


class IngestRunList(generics.ListAPIView):
    """Ontology ingest runs (staff). POST starts reading a Wikidata dump on the cpu queue."""

    serializer_class = IngestRunSerializer
    queryset = IngestRun.objects.order_by("-id")
    permission_classes = [IsAdminUser]

    @extend_schema(request=IngestRequestSerializer, responses={202: IngestRunSerializer})
    def post(self, request):
        serializer = IngestRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = services.request_dump_ingest(serializer.validated_data["path"], actor=request.user,
                                           skip_malformed=serializer.validated_data["skip_malformed"])
        return Response(IngestRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class IngestRunDetail(generics.RetrieveAPIView):
    serializer_class = IngestRunSerializer
    queryset = IngestRun.objects.all()
    permission_classes = [IsAdminUser]


class ResumeIngest(APIView):
    """Continue a failed or interrupted run from its last committed offset."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses={202: IngestRunSerializer})
    def post(self, request, pk: int):
        run = IngestRun.objects.filter(pk=pk).first()
        if run is None:
            raise NotFound(f"ingest run {pk} not found")
        return Response(IngestRunSerializer(services.resume_dump_ingest(run)).data, status=status.HTTP_202_ACCEPTED)


def _plan(request, pk: int, roles) -> ExpansionPlan:
    plan = ExpansionPlan.objects.filter(pk=pk).first()
    if plan is None:
        raise NotFound(f"plan {pk} not found")
    access_project(request.user, plan.project_id, roles)
    return plan


class ProjectPlanList(generics.ListAPIView):
    """A project's domain expansion plans; POST creates one (data leads)."""

    serializer_class = PlanSerializer

    def get_queryset(self):
        project = access_project(self.request.user, self.kwargs["pk"], LEADS | {"reviewer"})
        return ExpansionPlan.objects.filter(project=project).prefetch_related("domains").order_by("id")

    @extend_schema(request=PlanSerializer, responses={201: PlanSerializer})
    def post(self, request, pk: int):
        project = access_project(request.user, pk, LEADS)
        serializer = PlanSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        domains = [dict(d) for d in data.pop("domains")]
        for domain in domains:
            domain["media_sources"] = [dict(s) for s in domain.get("media_sources", [])]
            domain["node_quotas"] = {k: dict(v) for k, v in domain.get("node_quotas", {}).items()}
        plan = services.create_plan(project, domains=domains, actor=request.user, **data)
        return Response(PlanSerializer(plan).data, status=status.HTTP_201_CREATED)


class PlanDetail(APIView):
    @extend_schema(responses=PlanSerializer)
    def get(self, request, pk: int):
        return Response(PlanSerializer(_plan(request, pk, LEADS | {"reviewer"})).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        _plan(request, pk, LEADS).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApplyPlan(APIView):
    """Run one round of the plan on the cpu queue: new datapoints for every phrase still short of its quota."""

    @extend_schema(request=None, responses={202: JobSerializer})
    def post(self, request, pk: int):
        job = services.request_plan_application(_plan(request, pk, LEADS), actor=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class PlanCoverage(APIView):
    """Datapoints and accepted data per node and per domain, against the quotas."""

    @extend_schema(responses=CoverageSerializer)
    def get(self, request, pk: int):
        return Response(services.plan_coverage(_plan(request, pk, LEADS | {"reviewer"})))


class ProjectHardNegatives(generics.ListAPIView):
    """Hard-negative candidates of a project, kept or not, with why (?kept=true|false)."""

    serializer_class = HardNegativeSerializer

    def get_queryset(self):
        project = access_project(self.request.user, self.kwargs["pk"], LEADS | {"reviewer"})
        queryset = HardNegative.objects.filter(project=project).order_by("id")
        kept = self.request.query_params.get("kept")
        if kept is not None:
            if kept not in ("true", "false"):
                raise InvalidInput("kept must be true or false")
            queryset = queryset.filter(kept=kept == "true")
        return queryset

    @extend_schema(parameters=[OpenApiParameter("kept", bool)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class MineHardNegatives(APIView):
    """Mine hard negatives for the project's verified positives with its active SAM 3 (cpu queue)."""

    @extend_schema(request=MineRequestSerializer, responses={202: JobSerializer(many=True)})
    def post(self, request, pk: int):
        project = access_project(request.user, pk, LEADS)
        serializer = MineRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        jobs = services.request_hard_negative_mining(project, datapoints=serializer.validated_data.get("datapoints"))
        return Response(JobSerializer(jobs, many=True).data, status=status.HTTP_202_ACCEPTED)
