import json

from django.core.files.storage import default_storage
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from dataengine.accounts.services import LEADS, access_project
from dataengine.engine import exports, services
from dataengine.engine.api.serializers import (
    CocoResultSerializer,
    GoldImportSerializer,
    ModelVersionSerializer,
    PromoteSerializer,
    SnapshotSerializer,
)
from dataengine.engine.models import ModelVersion, Snapshot
from dataengine.errors import InvalidInput, NotFound


class ModelVersionList(generics.ListCreateAPIView):
    """The model registry. Registering a version is for staff."""

    serializer_class = ModelVersionSerializer
    queryset = ModelVersion.objects.order_by("id")

    def get_permissions(self):
        return [IsAdminUser()] if self.request.method == "POST" else super().get_permissions()


class PromoteModel(APIView):
    """Make a registered model version the project's active proposer (rollback = promote the previous one)."""

    @extend_schema(request=PromoteSerializer, responses=ModelVersionSerializer)
    def post(self, request, pk: int):
        project = access_project(request.user, pk, LEADS)
        serializer = PromoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = services.promote_model_version(project, serializer.validated_data["model_version"],
                                                 actor=request.user)
        return Response(ModelVersionSerializer(version).data)


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
