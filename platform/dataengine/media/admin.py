from django.contrib import admin

from dataengine.media.models import MediaItem


@admin.register(MediaItem)
class MediaItemAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "name", "status", "width", "height", "created_at"]
    list_filter = ["status", "kind", "source"]
    search_fields = ["name", "sha256"]
