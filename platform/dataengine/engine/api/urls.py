from django.urls import path

from dataengine.engine.api import views

urlpatterns = [
    path("models/", views.ModelVersionList.as_view(), name="model-list"),
    path("models/<int:pk>/", views.ModelVersionDetail.as_view(), name="model-detail"),
    path("models/<int:pk>/retire", views.RetireModel.as_view(), name="model-retire"),
    path("projects/<int:pk>/models/promote", views.PromoteModel.as_view(), name="project-promote-model"),
    path("projects/<int:pk>/models/rollback", views.RollbackModel.as_view(), name="project-rollback-model"),
    path("projects/<int:pk>/models/history", views.ModelHistory.as_view(), name="project-model-history"),
    path("projects/<int:pk>/snapshots/", views.ProjectSnapshots.as_view(), name="project-snapshots"),
    path("snapshots/<int:pk>/download", views.SnapshotDownload.as_view(), name="snapshot-download"),
    path("projects/<int:pk>/gold/", views.GoldImport.as_view(), name="project-gold-import"),
    path("projects/<int:pk>/gold/low-score-phrases", views.LowScorePhrases.as_view(),
         name="project-low-score-phrases"),
    path("projects/<int:pk>/predictions", views.Predictions.as_view(), name="project-predictions"),
]
