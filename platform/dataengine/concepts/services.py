"""Concepts and datapoints."""
from __future__ import annotations

import re
from collections.abc import Iterable

from django.db import transaction

from dataengine.accounts.models import Project
from dataengine.concepts.models import Concept, Datapoint, DatapointSource, DatapointState
from dataengine.errors import InvalidInput
from dataengine.media.models import MediaItem, MediaStatus

MAX_PHRASE_CHARS = 300


def normalize_phrase(text: str) -> str:
    """Lower case, single spaces, no surrounding punctuation. The ontology library refines this further."""
    if not isinstance(text, str):
        raise InvalidInput("a phrase must be a string")
    phrase = re.sub(r"\s+", " ", text).strip().strip(".,;:!?\"'").strip().lower()
    if not phrase:
        raise InvalidInput("a phrase must not be empty")
    if len(phrase) > MAX_PHRASE_CHARS:
        raise InvalidInput(f"a phrase must be at most {MAX_PHRASE_CHARS} characters")
    return phrase


def get_or_create_concept(text: str, *, ontology_node: str = "") -> Concept:
    concept, created = Concept.objects.get_or_create(phrase=normalize_phrase(text),
                                                     defaults={"ontology_node": ontology_node})
    if not created and ontology_node and not concept.ontology_node:
        concept.ontology_node = ontology_node
        concept.save(update_fields=["ontology_node"])
    return concept


@transaction.atomic
def create_datapoints(project: Project, pairs: Iterable[tuple[MediaItem, str]], *,
                      source: str = DatapointSource.MANUAL) -> list[Datapoint]:
    """One datapoint per (media, phrase); existing pairs are returned unchanged. Failed media are refused."""
    datapoints = []
    for media, text in pairs:
        if media.project_id != project.pk:
            raise InvalidInput(f"media {media.pk} belongs to another project")
        if media.status == MediaStatus.FAILED:
            raise InvalidInput(f"media {media.pk} failed ingest ({media.error}) and cannot be annotated")
        datapoint, _ = Datapoint.objects.get_or_create(
            project=project, media=media, concept=get_or_create_concept(text), is_gold=False,
            defaults={"source": source, "phase": project.phase, "state": DatapointState.PENDING},
        )
        datapoints.append(datapoint)
    return datapoints
