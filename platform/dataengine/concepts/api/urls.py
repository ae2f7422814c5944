from django.urls import path

from dataengine.concepts.api import views

urlpatterns = [
    path("concepts/", views.ConceptList.as_view(), name="concept-list"),
    path("projects/<int:pk>/datapoints/", views.ProjectDatapointList.as_view(), name="project-datapoints"),
    path("datapoints/<int:pk>/", views.DatapointDetail.as_view(), name="datapoint-detail"),
    path("projects/<int:pk>/proposals/request", views.RequestProposals.as_view(), name="project-request-proposals"),
]
