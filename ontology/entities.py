"""The one record every taxonomy reader yields (Wikidata items, WordNet noun synsets)."""
from __future__ import annotations

from dataclasses import dataclass, field


class OntologyError(Exception):
    """Bad ontology input (a dump, a WordNet folder, a node id, a plan): the message says what and where."""


class UnknownNode(OntologyError, KeyError):
    """A node id that is not in the taxonomy."""

    def __init__(self, node_id: str):
        super().__init__(f"unknown ontology node {node_id!r}")
        self.node_id = node_id

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


@dataclass(slots=True)
class Entity:
    """One taxonomy node as read from a source.

    ``id``: ``Q146`` (Wikidata) or ``wn:02123045`` (WordNet noun offset). ``label``: English label or None.
    ``subclass_of`` / ``instance_of``: parent ids (Wikidata P279 / P31; WordNet hypernyms / instance hypernyms).
    ``sitelinks``: a popularity count (Wikidata: number of sitelinks; WordNet: SemCor tag count of its senses).
    """

    id: str
    label: str | None
    aliases: list[str] = field(default_factory=list)
    description: str | None = None
    subclass_of: list[str] = field(default_factory=list)
    instance_of: list[str] = field(default_factory=list)
    sitelinks: int = 0
