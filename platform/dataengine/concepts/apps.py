from django.apps import AppConfig


class ConceptsConfig(AppConfig):
    name = "dataengine.concepts"
    label = "concepts"
