from django.urls import path

from dataengine.media.api import views

urlpatterns = [
    path("projects/<int:pk>/media/", views.ProjectMediaList.as_view(), name="project-media"),
    path("media/<int:pk>/", views.MediaDetail.as_view(), name="media-detail"),
    path("media/<int:pk>/file", views.MediaFile.as_view(), name="media-file"),
]
