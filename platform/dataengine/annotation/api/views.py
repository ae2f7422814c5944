"""The human work API: lease the next task, heartbeat, and submit decisions. Views parse, services decide."""
from django.db import connection
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from dataengine.accounts.services import LEADS, WORKERS, access_project, access_project_id
from dataengine.annotation import queries, services, verifying
from dataengine.annotation.api.serializers import (
    CorrectionSerializer,
    ExhaustivityVerificationSerializer,
    LeaseSerializer,
    MaskVerificationSerializer,
    NextTaskSerializer,
    ReviewSerializer,
    SubmissionResultSerializer,
    TaskSerializer,
    VerifierPrecisionSerializer,
)
from dataengine.annotation.models import HumanTask, TaskKind
from dataengine.errors import NotAllowed, NotFound

TASK_RELATED = ("datapoint__concept", "datapoint__media", "mask")
REVIEWERS = LEADS | {"reviewer"}  # who audits AI-accepted datapoints (annotators do not)


def _roles_for(kind: str) -> frozenset:
    return REVIEWERS if kind == TaskKind.REVIEW else WORKERS


def _task_response(task_id: int) -> Response:
    task = HumanTask.objects.select_related(*TASK_RELATED).get(pk=task_id)
    return Response(TaskSerializer(task).data)


def _outcome_response(outcome: services.Outcome) -> Response:
    return Response({"task": outcome.task.pk, "task_state": outcome.task.state, "datapoint": outcome.datapoint.pk,
                     "datapoint_state": outcome.datapoint.state, "final_label": outcome.datapoint.final_label})


class NextTask(APIView):
    """Lease the next task of a kind (200), or 204 when that queue is empty."""

    @extend_schema(request=NextTaskSerializer,
                   responses={200: TaskSerializer, 204: OpenApiResponse(description="no task of this kind")})
    def post(self, request, pk: int):
        serializer = NextTaskSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        kind = serializer.validated_data["kind"]
        roles = _roles_for(kind)
        if connection.vendor == "postgresql":  # the hot path: lease and detail in one statement
            data = queries.lease_next_task_json(access_project_id(request.user, pk, roles), request.user.pk, kind)
            return Response(data) if data is not None else Response(status=status.HTTP_204_NO_CONTENT)
        project = access_project(request.user, pk, roles)
        task = services.lease_next_task(project, request.user, kind)
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return _task_response(task.pk)


class TaskDetail(APIView):
    """A task you hold (annotators see only their own leased tasks; data leads see any in their projects)."""

    @extend_schema(responses=TaskSerializer)
    def get(self, request, pk: int):
        task = HumanTask.objects.filter(pk=pk).only("id", "project_id", "holder_id", "state").first()
        if task is None:
            raise NotFound(f"task {pk} not found")
        access_project(request.user, task.project_id, WORKERS)
        if task.holder_id != request.user.pk:
            try:
                access_project(request.user, task.project_id, LEADS)
            except NotAllowed:
                raise NotAllowed("you do not hold this task") from None
        return _task_response(pk)


def _submission(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class Heartbeat(APIView):
    @extend_schema(request=LeaseSerializer, responses=TaskSerializer)
    def post(self, request, pk: int):
        data = _submission(LeaseSerializer, request)
        services.heartbeat(pk, request.user, data["lease_token"])
        return _task_response(pk)


class Release(APIView):
    @extend_schema(request=LeaseSerializer, responses={204: None})
    def post(self, request, pk: int):
        data = _submission(LeaseSerializer, request)
        services.release_task(pk, request.user, data["lease_token"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class SubmitMaskVerification(APIView):
    @extend_schema(request=MaskVerificationSerializer, responses=SubmissionResultSerializer)
    def post(self, request, pk: int):
        data = _submission(MaskVerificationSerializer, request)
        return _outcome_response(services.submit_mask_verification(
            pk, user=request.user, lease_token=data["lease_token"], decision=data["decision"],
            seconds=data["seconds"]))


class SubmitExhaustivityVerification(APIView):
    @extend_schema(request=ExhaustivityVerificationSerializer, responses=SubmissionResultSerializer)
    def post(self, request, pk: int):
        data = _submission(ExhaustivityVerificationSerializer, request)
        return _outcome_response(services.submit_exhaustivity_verification(
            pk, user=request.user, lease_token=data["lease_token"], decision=data["decision"],
            seconds=data["seconds"]))


class SubmitCorrection(APIView):
    @extend_schema(request=CorrectionSerializer, responses=SubmissionResultSerializer)
    def post(self, request, pk: int):
        data = _submission(CorrectionSerializer, request)
        masks = [services.MaskInput(mask_id=m.get("mask_id"), rle=m.get("rle"), iscrowd=m["iscrowd"])
                 for m in data["masks"]]
        return _outcome_response(services.submit_correction(
            pk, user=request.user, lease_token=data["lease_token"], datapoint_revision=data["datapoint_revision"],
            outcome=data["outcome"], masks=masks, seconds=data["seconds"], reason=data["reason"]))




class SubmitReview(APIView):
    """Confirm an AI-accepted datapoint, or reject it (it goes back to correction and counts against the AI).
    Reviewers and data leads only."""

    @extend_schema(request=ReviewSerializer, responses=SubmissionResultSerializer)
    def post(self, request, pk: int):
        project_id = HumanTask.objects.filter(pk=pk).values_list("project_id", flat=True).first()
        if project_id is None:
            raise NotFound(f"task {pk} not found")
        access_project(request.user, project_id, REVIEWERS)
        data = _submission(ReviewSerializer, request)
        return _outcome_response(verifying.submit_review(
            pk, user=request.user, lease_token=data["lease_token"], decision=data["decision"],
            seconds=data["seconds"]))


class VerifierPrecision(APIView):
    """AI precision per verifier version, measured by human review of sampled auto-accepted datapoints."""

    @extend_schema(responses=VerifierPrecisionSerializer(many=True))
    def get(self, request, pk: int):
        project = access_project(request.user, pk, LEADS | {"reviewer"})
        return Response(verifying.verifier_precision(project))
