from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from dataengine.views import home

api = [
    path("", include("dataengine.accounts.api.urls")),
    path("", include("dataengine.media.api.urls")),
    path("", include("dataengine.concepts.api.urls")),
    path("", include("dataengine.annotation.api.urls")),
    path("", include("dataengine.engine.api.urls")),
    path("", include("dataengine.taxonomy.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("api/", include(api)),
    path("api-auth/", include("rest_framework.urls")),
]
