from django.urls import path

from dataengine.taxonomy.api import views

urlpatterns = [
    path("ontology/nodes/", views.NodeList.as_view(), name="ontology-node-list"),
    path("ontology/nodes/<str:node_id>/", views.NodeDetail.as_view(), name="ontology-node-detail"),
    *[path(f"ontology/nodes/<str:node_id>/{relation}/", view.as_view(), name=f"ontology-node-{relation}")
      for relation, view in views.RELATION_VIEWS.items()],
    path("ontology/lca/", views.LowestCommonAncestors.as_view(), name="ontology-lca"),
    path("ontology/phrases/map", views.MapPhrase.as_view(), name="ontology-map-phrase"),
    path("ontology/phrases/clean", views.CleanPhrases.as_view(), name="ontology-clean-phrases"),
    path("ontology/ingests/", views.IngestRunList.as_view(), name="ontology-ingest-list"),
    path("ontology/ingests/<int:pk>/", views.IngestRunDetail.as_view(), name="ontology-ingest-detail"),
    path("ontology/ingests/<int:pk>/resume", views.ResumeIngest.as_view(), name="ontology-ingest-resume"),
    path("projects/<int:pk>/plans/", views.ProjectPlanList.as_view(), name="project-plans"),
    path("plans/<int:pk>/", views.PlanDetail.as_view(), name="plan-detail"),
    path("plans/<int:pk>/apply", views.ApplyPlan.as_view(), name="plan-apply"),
    path("plans/<int:pk>/coverage", views.PlanCoverage.as_view(), name="plan-coverage"),
    path("projects/<int:pk>/hard-negatives/", views.ProjectHardNegatives.as_view(), name="project-hard-negatives"),
    path("projects/<int:pk>/hard-negatives/mine", views.MineHardNegatives.as_view(), name="project-mine-negatives"),
]
