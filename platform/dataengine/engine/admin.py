from django.contrib import admin

from dataengine.engine.models import AuditEvent, Job, ModelVersion, Snapshot


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "kind", "status", "uri", "created_at"]
    list_filter = ["kind", "status"]


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "sha256", "counts", "created_at"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "task_name", "state", "attempts", "created_at"]
    list_filter = ["task_name", "state"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "actor", "action", "target_type", "target_id", "created_at"]
    list_filter = ["action"]
