from django.urls import path

from dataengine.annotation.api import views

urlpatterns = [
    path("projects/<int:pk>/tasks/next", views.NextTask.as_view(), name="task-next"),
    path("tasks/<int:pk>/", views.TaskDetail.as_view(), name="task-detail"),
    path("tasks/<int:pk>/heartbeat", views.Heartbeat.as_view(), name="task-heartbeat"),
    path("tasks/<int:pk>/release", views.Release.as_view(), name="task-release"),
    path("tasks/<int:pk>/mask-verification", views.SubmitMaskVerification.as_view(), name="task-mv"),
    path("tasks/<int:pk>/exhaustivity-verification", views.SubmitExhaustivityVerification.as_view(), name="task-ev"),
    path("tasks/<int:pk>/correction", views.SubmitCorrection.as_view(), name="task-correction"),
    path("tasks/<int:pk>/review", views.SubmitReview.as_view(), name="task-review"),
    path("projects/<int:pk>/verifier-precision", views.VerifierPrecision.as_view(), name="verifier-precision"),
]

from dataengine.annotation.api.interactive import SegmentClick  # noqa: E402

urlpatterns.append(path("media/<int:pk>/segment", SegmentClick.as_view(), name="media-segment"))
