from django.urls import reverse
from rest_framework import serializers

from dataengine.media.models import MediaItem


class MediaItemSerializer(serializers.ModelSerializer):
    file_url = serializers.SerializerMethodField(help_text="Authenticated URL of the file's bytes.")

    class Meta:
        model = MediaItem
        fields = ["id", "project", "kind", "name", "sha256", "size_bytes", "width", "height", "frame_count",
                  "status", "error", "source", "file_url", "created_at"]
        read_only_fields = fields

    def get_file_url(self, item: MediaItem) -> str:
        return reverse("media-file", args=[item.pk])


class UploadSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), allow_empty=False,
                                 help_text="One or more image files (multipart field 'files').")


class IngestReportSerializer(serializers.Serializer):
    created = serializers.ListField(child=serializers.IntegerField())
    duplicates = serializers.ListField(child=serializers.IntegerField())
    failed = serializers.ListField(child=serializers.IntegerField())
    items = MediaItemSerializer(many=True)
