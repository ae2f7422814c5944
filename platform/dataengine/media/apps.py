from django.apps import AppConfig


class MediaConfig(AppConfig):
    name = "dataengine.media"
    label = "media"
