from django.apps import AppConfig


class EngineConfig(AppConfig):
    name = "dataengine.engine"
    label = "engine"
