from django.contrib import admin

from dataengine.annotation.models import HumanTask, Mask, Proposal, Verdict


@admin.register(HumanTask)
class HumanTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "state", "priority", "holder", "lease_expires_at", "attempts"]
    list_filter = ["kind", "state"]
    raw_id_fields = ["datapoint", "mask"]


@admin.register(Verdict)
class VerdictAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "datapoint", "decision", "by_ai", "user", "seconds", "created_at"]
    list_filter = ["kind", "decision", "by_ai"]
    raw_id_fields = ["datapoint", "mask", "task"]


@admin.register(Mask)
class MaskAdmin(admin.ModelAdmin):
    list_display = ["id", "datapoint", "source", "state", "iscrowd", "area", "score"]
    list_filter = ["source", "state", "iscrowd"]
    raw_id_fields = ["datapoint", "proposal", "replaces"]


@admin.register(Proposal)
class ProposalAdmin(admin.ModelAdmin):
    list_display = ["id", "datapoint", "model_version", "presence_score", "created_at"]
    raw_id_fields = ["datapoint", "job"]
