"""POST /api/media/{id}/segment: click-to-segment for the annotator UI (see dataengine.annotation.interactive)."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from dataengine.annotation import interactive
from dataengine.annotation.api.serializers import RLEField

MAX_POINTS = 64


class SegmentClickSerializer(serializers.Serializer):
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2), default=list,
        max_length=MAX_POINTS, help_text="[[x, y], ...] in pixels of the original image (x right, y down).")
    labels = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=1), default=list,
                                   max_length=MAX_POINTS, help_text="One per point: 1 on the object, 0 not on it.")
    box = serializers.ListField(child=serializers.FloatField(), min_length=4, max_length=4, allow_null=True,
                                required=False, default=None, help_text="[x1, y1, x2, y2] in pixels, or null.")
    model_version = serializers.CharField(required=False, allow_null=True, default=None,
                                          help_text="A registered SAM 3 version; default: the project's active one.")

    def validate(self, data):
        if len(data["points"]) != len(data["labels"]):
            raise serializers.ValidationError("give one label per point")
        if not data["points"] and data["box"] is None:
            raise serializers.ValidationError("give at least one point or a box")
        return data


class SegmentMaskSerializer(serializers.Serializer):
    rle = RLEField(help_text="COCO compressed RLE at the original image size.")
    score = serializers.FloatField(help_text="The tracker's predicted IoU of the mask.")
    model_version = serializers.CharField(allow_null=True, help_text="The registered version answering, if any.")
    tracker = serializers.CharField(help_text="The tracker checkpoint URI that made the mask.")
    cached_embedding = serializers.BooleanField(help_text="True when the image encoder was skipped (cache hit).")
    image_size = serializers.ListField(child=serializers.IntegerField(), help_text="[height, width]")
    timings_ms = serializers.DictField(child=serializers.FloatField(), help_text="encode and decode, in the worker")


class SegmentClick(APIView):
    """One mask from positive/negative clicks and/or a box on an image (any member who may annotate).

    Runs in this process without a Celery result backend, else on the worker's queue with a timeout (504).
    """

    @extend_schema(request=SegmentClickSerializer, responses={
        200: SegmentMaskSerializer,
        400: OpenApiResponse(description="bad prompt (outside the image, labels not 0/1, nothing given)"),
        422: OpenApiResponse(description="the image could not be read; recorded on a failed job"),
        503: OpenApiResponse(description="the tracker model could not be loaded; recorded on a failed job"),
        504: OpenApiResponse(description="no answer from the worker in time"),
    })
    def post(self, request, pk: int):
        serializer = SegmentClickSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(interactive.segment(request.user, pk, **serializer.validated_data))
