import mimetypes

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from dataengine.accounts.services import ANYONE, LEADS, access_project
from dataengine.errors import NotFound, TooLarge
from dataengine.media import services
from dataengine.media.api.serializers import IngestReportSerializer, MediaItemSerializer, UploadSerializer
from dataengine.media.models import MediaItem, MediaStatus


class ProjectMediaList(generics.ListAPIView):
    """A project's media; POST uploads files (data leads). Corrupt files become items in state failed."""

    serializer_class = MediaItemSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        project = access_project(self.request.user, self.kwargs["pk"])
        queryset = MediaItem.objects.filter(project=project).order_by("id")
        if self.request.query_params.get("status") in MediaStatus.values:
            queryset = queryset.filter(status=self.request.query_params["status"])
        return queryset

    @extend_schema(request=UploadSerializer, responses={201: IngestReportSerializer})
    def post(self, request, pk: int):
        project = access_project(request.user, pk, LEADS)
        serializer = UploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report = services.IngestReport()
        items = []
        files = serializer.validated_data["files"]
        for upload in files:  # refuse the whole request before storing anything
            if upload.size > settings.MEDIA_MAX_UPLOAD_BYTES:
                raise TooLarge(f"{upload.name}: {upload.size} bytes is more than the limit of "
                               f"{settings.MEDIA_MAX_UPLOAD_BYTES}")
        for upload in files:
            item, created = services.ingest_bytes(project, name=upload.name, data=upload.read())
            report.add(item, created)
            items.append(item)
        body = {**report.as_dict(), "items": MediaItemSerializer(items, many=True).data}
        return Response(body, status=status.HTTP_201_CREATED)


def _media(user, pk: int, roles=ANYONE) -> MediaItem:
    item = MediaItem.objects.filter(pk=pk).first()
    if item is None:
        raise NotFound(f"media {pk} not found")
    access_project(user, item.project_id, roles)
    return item


class MediaDetail(APIView):
    @extend_schema(responses=MediaItemSerializer)
    def get(self, request, pk: int):
        return Response(MediaItemSerializer(_media(request.user, pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        _media(request.user, pk, LEADS).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MediaFile(APIView):
    """The media item's bytes (for the annotator UI and API clients)."""

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request, pk: int):
        item = _media(request.user, pk)
        content_type = mimetypes.guess_type(item.name)[0] or "application/octet-stream"
        return FileResponse(default_storage.open(item.storage_name, "rb"), content_type=content_type)
