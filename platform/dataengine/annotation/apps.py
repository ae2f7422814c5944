from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "dataengine.annotation"
    label = "annotation"
