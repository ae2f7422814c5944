from django.contrib import admin

from dataengine.concepts.models import Concept, Datapoint


@admin.register(Concept)
class ConceptAdmin(admin.ModelAdmin):
    list_display = ["id", "phrase", "ontology_node"]
    search_fields = ["phrase"]


@admin.register(Datapoint)
class DatapointAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "media", "concept", "state", "final_label", "is_gold"]
    list_filter = ["state", "final_label", "is_gold", "source"]
    raw_id_fields = ["media", "concept"]
