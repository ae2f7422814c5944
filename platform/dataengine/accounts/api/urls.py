from django.urls import path

from dataengine.accounts.api import views

urlpatterns = [
    path("projects/", views.ProjectList.as_view(), name="project-list"),
    path("projects/<int:pk>/", views.ProjectDetail.as_view(), name="project-detail"),
    path("projects/<int:pk>/members/", views.MemberList.as_view(), name="project-members"),
]
