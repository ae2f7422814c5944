from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from dataengine.accounts.services import LEADS, access_project
from dataengine.annotation.proposing import request_proposals
from dataengine.concepts import services
from dataengine.concepts.api.serializers import (
    ConceptSerializer,
    DatapointCreateSerializer,
    DatapointSerializer,
    JobSerializer,
    ProposalRequestSerializer,
)
from dataengine.concepts.models import Concept, Datapoint, DatapointState
from dataengine.errors import InvalidInput, NotFound
from dataengine.media.models import MediaItem


class ConceptList(generics.ListCreateAPIView):
    serializer_class = ConceptSerializer
    queryset = Concept.objects.order_by("id")

    def perform_create(self, serializer):
        serializer.instance = services.get_or_create_concept(**serializer.validated_data)


class ProjectDatapointList(generics.ListAPIView):
    """A project's datapoints (filter with ?state=); POST pairs media with phrases (data leads)."""

    serializer_class = DatapointSerializer

    def get_queryset(self):
        project = access_project(self.request.user, self.kwargs["pk"], LEADS | {"reviewer"})
        queryset = Datapoint.objects.filter(project=project).select_related("concept").order_by("id")
        state = self.request.query_params.get("state")
        if state:
            if state not in DatapointState.values:
                raise InvalidInput(f"state must be one of {DatapointState.values}")
            queryset = queryset.filter(state=state)
        return queryset

    @extend_schema(request=DatapointCreateSerializer, responses={201: DatapointSerializer(many=True)})
    def post(self, request, pk: int):
        project = access_project(request.user, pk, LEADS)
        serializer = DatapointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ids = serializer.validated_data["media"]
        media = {m.pk: m for m in MediaItem.objects.filter(pk__in=ids, project=project)}
        missing = sorted(set(ids) - set(media))
        if missing:
            raise InvalidInput(f"media {missing} not found in this project")
        pairs = [(media[i], phrase) for i in ids for phrase in serializer.validated_data["phrases"]]
        datapoints = services.create_datapoints(project, pairs, source=serializer.validated_data["source"])
        return Response(DatapointSerializer(datapoints, many=True).data, status=status.HTTP_201_CREATED)


class DatapointDetail(APIView):
    def _get(self, request, pk, roles):
        datapoint = Datapoint.objects.select_related("concept").filter(pk=pk).first()
        if datapoint is None:
            raise NotFound(f"datapoint {pk} not found")
        access_project(request.user, datapoint.project_id, roles)
        return datapoint

    @extend_schema(responses=DatapointSerializer)
    def get(self, request, pk: int):
        return Response(DatapointSerializer(self._get(request, pk, LEADS | {"reviewer"})).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        self._get(request, pk, LEADS).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class RequestProposals(APIView):
    """Ask the project's active SAM 3 for masks on its pending datapoints (one job per media item)."""

    @extend_schema(request=ProposalRequestSerializer, responses={202: JobSerializer(many=True)})
    def post(self, request, pk: int):
        project = access_project(request.user, pk, LEADS)
        serializer = ProposalRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        chosen = serializer.validated_data.get("datapoints")
        datapoints = Datapoint.objects.filter(project=project, pk__in=chosen) if chosen is not None else None
        jobs = request_proposals(project, datapoints=datapoints)
        return Response(JobSerializer(jobs, many=True).data, status=status.HTTP_202_ACCEPTED)


