from django.contrib import admin

from dataengine.taxonomy.models import Edge, ExpansionPlan, HardNegative, IngestRun, Node, PlanDomain, PlanPhrase


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ["id", "label", "source", "sitelinks"]
    list_filter = ["source"]
    search_fields = ["id", "label"]


@admin.register(Edge)
class EdgeAdmin(admin.ModelAdmin):
    list_display = ["child", "kind", "parent"]
    search_fields = ["child", "parent"]


@admin.register(IngestRun)
class IngestRunAdmin(admin.ModelAdmin):
    list_display = ["id", "source", "path", "state", "entities", "offset", "rate", "updated_at"]
    list_filter = ["source", "state"]
    readonly_fields = ["report", "error"]


class PlanDomainInline(admin.StackedInline):
    model = PlanDomain
    extra = 0


@admin.register(ExpansionPlan)
class ExpansionPlanAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "name", "state", "updated_at"]
    list_filter = ["state"]
    inlines = [PlanDomainInline]


@admin.register(PlanPhrase)
class PlanPhraseAdmin(admin.ModelAdmin):
    list_display = ["id", "domain", "node_id", "concept", "state", "target_datapoints"]
    list_filter = ["state"]
    raw_id_fields = ["concept"]


@admin.register(HardNegative)
class HardNegativeAdmin(admin.ModelAdmin):
    list_display = ["id", "positive", "phrase", "route", "overlap", "kept"]
    list_filter = ["kept", "route"]
    raw_id_fields = ["positive", "datapoint"]
