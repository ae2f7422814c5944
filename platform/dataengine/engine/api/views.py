import json

from django.core.files.storage import default_storage
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from dataengine.accounts.services import LEADS, access_project
from dataengine.engine import exports, phrase_scores, services
from dataengine.engine.api.serializers import (
    CocoResultSerializer,
    GoldImportSerializer,
    LowScorePhrasesSerializer,
    ModelHistorySerializer,
    ModelVersionSerializer,
    PromoteSerializer,
    RollbackSerializer,
    SnapshotSerializer,
)
from dataengine.engine.models import ModelKind, ModelStatus, ModelVersion, Snapshot
from dataengine.errors import InvalidInput, NotFound


class ModelVersionList(generics.ListCreateAPIView):
    """The model registry (filters: ?kind=, ?status=). Registering a version is for staff."""

    serializer_class = ModelVersionSerializer

    def get_queryset(self):
        queryset = ModelVersion.objects.order_by("id")
        for key, values in (("kind", ModelKind.values), ("status", ModelStatus.values)):
            value = self.request.query_params.get(key)
            if value is not None:
                if value not in values:
                    raise InvalidInput(f"{key} must be one of {', '.join(values)}")
                queryset = queryset.filter(**{key: value})
        return queryset

    @extend_schema(parameters=[OpenApiParameter("kind", str, enum=ModelKind.values),
                               OpenApiParameter("status", str, enum=ModelStatus.values)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_permissions(self):
        return [IsAdminUser()] if self.request.method == "POST" else super().get_permissions()


class ModelVersionDetail(generics.RetrieveAPIView):
    serializer_class = ModelVersionSerializer
    queryset = ModelVersion.objects.all()


class RetireModel(APIView):
    """Withdraw a version for good (staff); 409 while a project still uses it."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses=ModelVersionSerializer)
    def post(self, request, pk: int):
        version = ModelVersion.objects.filter(pk=pk).first()
        if version is None:
            raise NotFound(f"model version {pk} not found")
        return Response(ModelVersionSerializer(services.retire_model_version(version, actor=request.user)).data)


class PromoteModel(APIView):
    """Make a registered model version the project's active model or verifier, by its kind (409 if retired)."""

    @extend_schema(request=PromoteSerializer, responses=ModelVersionSerializer)
    def post(self, request, pk: int):
        project = access_project(request.user, pk, LEADS)
        serializer = PromoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = services.promote_model_version(project, serializer.validated_data["model_version"],
                                                 actor=request.user)
        return Response(ModelVersionSerializer(version).data)


class RollbackModel(APIView):
    """Put back the version deployed before the current one (one call; retired versions are skipped)."""

    @extend_schema(request=RollbackSerializer, responses=ModelVersionSerializer)
    def post(self, request, pk: int):
        project = access_project(request.user, pk, LEADS)
        serializer = RollbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = services.rollback_model_version(project, kind=serializer.validated_data["kind"], actor=request.user)
        return Response(ModelVersionSerializer(version).data)


class ModelHistory(APIView):
    """The project's model promotions and rollbacks, newest first (?kind= to keep one slot)."""

    @extend_schema(parameters=[OpenApiParameter("kind", str, enum=ModelKind.values)],
                   responses=ModelHistorySerializer(many=True))
    def get(self, request, pk: int):
        project = access_project(request.user, pk)
        kind = request.query_params.get("kind")
        if kind is not None and kind not in ModelKind.values:
            raise InvalidInput(f"kind must be one of {', '.join(ModelKind.values)}")
        return Response(ModelHistorySerializer(services.model_history(project, kind=kind), many=True).data)


class ProjectSnapshots(generics.ListAPIView):
    """Snapshots of accepted data; POST freezes a new SA-Co export into storage."""

    serializer_class = SnapshotSerializer

    def get_queryset(self):
        project = access_project(self.request.user, self.kwargs["pk"], LEADS)
        return Snapshot.objects.filter(project=project).order_by("id")

    @extend_schema(request=None, responses={201: SnapshotSerializer})
    def post(self, request, pk: int):
        project = access_project(request.user, pk, LEADS)
        snapshot = exports.export_snapshot(project, actor=request.user)
        return Response(SnapshotSerializer(snapshot).data, status=status.HTTP_201_CREATED)


class SnapshotDownload(APIView):
    @extend_schema(responses={(200, "application/json"): dict})
    def get(self, request, pk: int):
        snapshot = Snapshot.objects.filter(pk=pk).first()
        if snapshot is None:
            raise NotFound(f"snapshot {pk} not found")
        access_project(request.user, snapshot.project_id, LEADS)
        with default_storage.open(snapshot.storage_name, "rb") as handle:
            return HttpResponse(handle.read(), content_type="application/json")


class GoldImport(APIView):
    """Import an SA-Co gold file as the project's frozen gold set (media must already be in the project)."""

    @extend_schema(request=GoldImportSerializer, responses={201: dict})
    def post(self, request, pk: int):
        project = access_project(request.user, pk, LEADS)
        serializer = GoldImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        document = serializer.validated_data["document"]
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"document is not JSON: {exc}") from None
        return Response(exports.import_gold(project, document, actor=request.user), status=status.HTTP_201_CREATED)


class LowScorePhrases(APIView):
    """Score the active SAM 3 on the gold set, phrase by phrase, and make the low ones failure-prone in routing."""

    @extend_schema(request=LowScorePhrasesSerializer, responses={200: dict})
    def post(self, request, pk: int):
        project = access_project(request.user, pk, LEADS)
        serializer = LowScorePhrasesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(phrase_scores.refresh_low_score_phrases(project, actor=request.user,
                                                                **serializer.validated_data))


class Predictions(APIView):
    """A model version's proposals on the project, in COCO results format (image_id = datapoint id)."""

    @extend_schema(parameters=[OpenApiParameter("model_version", str, required=True)],
                   responses=CocoResultSerializer(many=True))
    def get(self, request, pk: int):
        project = access_project(request.user, pk, LEADS)
        name = request.query_params.get("model_version")
        version = ModelVersion.objects.filter(name=name).first()
        if version is None:
            raise InvalidInput(f"unknown model_version {name!r}")
        return Response(exports.coco_results(project, version))
