"""Noun phrases: normalisation, near-duplicates, groundability, and mapping a free phrase to taxonomy nodes.

Cleaning follows SA-Co (docs/data-engine.md §5): lower case, single spaces, no articles or possessives,
singular head noun, near-identical phrases merged. Mapping combines lexical matching (exact label or
alias, head noun, shared words) with MiniLM similarity between the phrase and each candidate node's text
(``label, aliases: description``), plus a small prior for frequent senses; every candidate comes with its
score parts. Node embeddings are computed once and kept in an :class:`EmbeddingCache`.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ontology.embeddings import Embedder

DETERMINERS = frozenset("a an the this that these those some any each every my your his her its our their".split())
# Words that name a whole picture or a region of it, never a thing to segment.
SCENE_WORDS = frozenset("""scene image picture photo photograph view background foreground area region place
location setting scenery landscape surroundings environment thing things object objects stuff something item
items part side top bottom middle center centre left right front back corner edge indoors outdoors inside
outside everything nothing anything""".split())
KEEP_S = ("ss", "us", "is", "ous", "ics")  # glass, bus, iris, ... : not plurals without a lexicon

SUFFIX_RULES = (("ies", "y"), ("ves", "f"), ("ves", "fe"), ("ches", "ch"), ("shes", "sh"), ("xes", "x"),
                ("zes", "z"), ("ses", "s"), ("men", "man"), ("oes", "o"), ("s", ""))


# ---------------------------------------------------------------- normalisation

def singularize(word: str, *, lexicon: Callable[[str], bool] | None = None,
                exceptions: dict[str, str] | None = None) -> str:
    """The singular of a noun. With ``lexicon`` (is this a known lemma?) only known forms are returned,
    WordNet-morphy style; ``exceptions`` maps irregular plurals (mice → mouse)."""
    if exceptions and word in exceptions:
        return exceptions[word]
    if lexicon is not None:
        for suffix, replacement in SUFFIX_RULES:
            if word.endswith(suffix) and len(word) > len(suffix) + 1:
                candidate = word[: -len(suffix)] + replacement
                if lexicon(candidate):
                    return candidate
        return word
    if len(word) <= 3 or word.endswith(KEEP_S) or not word.endswith("s"):
        return word
    for suffix, replacement in (("ies", "y"), ("ches", "ch"), ("shes", "sh"), ("xes", "x"), ("sses", "ss"),
                                ("s", "")):
        if word.endswith(suffix):
            return word[: -len(suffix)] + replacement
    return word


def normalize_phrase(text: str, *, lexicon: Callable[[str], bool] | None = None,
                     exceptions: dict[str, str] | None = None) -> str:
    """Lower case, NFKC, single spaces, no surrounding punctuation, no leading determiners or possessive
    pronouns, ``'s`` possessives dropped (``dog's bowl`` → ``dog bowl``), head noun (last word) singular.
    Returns "" when nothing is left."""
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    text = re.sub(r"(\w)'s\b|(\w)s'(?=\s|$)", lambda m: (m.group(1) or m.group(2) + "s"), text)
    text = re.sub(r"[^\w\s\-']", " ", text)
    words = [w.strip("-'") for w in text.split()]
    words = [w for w in words if w]
    while words and words[0] in DETERMINERS:
        words.pop(0)
    if not words:
        return ""
    words[-1] = singularize(words[-1], lexicon=lexicon, exceptions=exceptions)
    return " ".join(words)


PREPOSITIONS = frozenset("of with on in for from at by under over near without".split())


def head_chunk(phrase: str) -> str:
    """The phrase before its first preposition: ``circle of friends`` → ``circle``."""
    words = phrase.split()
    for i, word in enumerate(words):
        if i and word in PREPOSITIONS:
            return " ".join(words[:i])
    return phrase


def head_noun(phrase: str) -> str:
    """The head word of a normalised phrase: the last word before any prepositional phrase."""
    chunk = head_chunk(phrase)
    return chunk.rsplit(" ", 1)[-1] if chunk else ""


def phrase_key(phrase: str) -> str:
    """Spelling-insensitive key: ``t-shirt``, ``t shirt`` and ``tshirt`` share one."""
    return re.sub(r"[\W_]+", "", phrase)


@dataclass
class PhraseGroup:
    canonical: str
    members: list[str] = field(default_factory=list)


def dedupe_phrases(phrases: Iterable[str], *, embedder: Embedder | None = None, threshold: float = 0.95,
                   normalize: Callable[[str], str] = normalize_phrase) -> list[PhraseGroup]:
    """Groups of near-identical phrases; the first phrase seen names its group.

    Near-identical: the same after normalisation, the same :func:`phrase_key`, or (with an ``embedder``)
    cosine similarity ≥ ``threshold`` with the group's canonical phrase.
    """
    groups: list[PhraseGroup] = []
    by_key: dict[str, PhraseGroup] = {}
    for raw in phrases:
        phrase = normalize(raw)
        if not phrase:
            continue
        group = by_key.get(phrase_key(phrase))
        if group is None:
            group = PhraseGroup(canonical=phrase)
            by_key[phrase_key(phrase)] = group
            groups.append(group)
        group.members.append(raw)
    if embedder is not None and len(groups) > 1:
        vectors = embedder.encode([g.canonical for g in groups])
        merged: list[PhraseGroup] = []
        kept_vectors: list[np.ndarray] = []
        for group, vector in zip(groups, vectors):
            if kept_vectors:
                similarities = np.stack(kept_vectors) @ vector
                best = int(np.argmax(similarities))
                if similarities[best] >= threshold:
                    merged[best].members.extend(group.members)
                    continue
            merged.append(group)
            kept_vectors.append(vector)
        groups = merged
    return groups


# ---------------------------------------------------------------- groundability

@dataclass(frozen=True)
class Groundability:
    ok: bool
    reason: str


def check_groundable(phrase: str, *, node_id: str | None, ancestors: Iterable[str] = (),
                     groundable_roots: Iterable[str] = (), depth: int | None = None,
                     min_depth: int = 4) -> Groundability:
    """Whether a phrase names something one can outline in an image.

    Refused: scene words (``background``, ``view`` ...); phrases mapped to no node; nodes outside the
    ``groundable_roots`` subtrees (abstractions: ``freedom``, ``idea``); nodes too general to outline
    (fewer than ``min_depth`` steps below the root: ``object``, ``whole``).
    """
    if not phrase:
        return Groundability(False, "empty phrase")
    words = phrase.split()
    if phrase in SCENE_WORDS or (len(words) <= 2 and head_noun(phrase) in SCENE_WORDS):
        return Groundability(False, f"scene word: {head_noun(phrase)!r} names the picture, not a thing in it")
    if node_id is None:
        return Groundability(False, "no ontology node matches this phrase")
    roots = set(groundable_roots)
    lineage = {node_id, *ancestors}
    if roots and not lineage & roots:
        return Groundability(False, f"abstract: {node_id} is outside the physical-object subtrees")
    if depth is not None and depth < min_depth:
        return Groundability(False, f"too general: {node_id} is only {depth} steps below the root")
    return Groundability(True, "groundable")


# ---------------------------------------------------------------- lexicon and mapping

@dataclass(frozen=True)
class NodeText:
    id: str
    label: str | None
    aliases: tuple[str, ...] = ()
    description: str | None = None
    popularity: int = 0

    def embedding_text(self) -> str:
        names = ", ".join(n for n in (self.label, *self.aliases) if n)
        return f"{names}: {self.description}" if self.description else names


class Lexicon:
    """Names → nodes, in memory: exact names (labels and aliases, lower case) and single words of names.

    ``senses`` (optional) orders a name's nodes, e.g. WordNet's sense order from index.noun.
    """

    def __init__(self, nodes: Iterable[NodeText], senses: dict[str, list[str]] | None = None):
        self.nodes: dict[str, NodeText] = {}
        self.by_name: dict[str, list[str]] = defaultdict(list)
        self.by_word: dict[str, set[str]] = defaultdict(set)
        for node in nodes:
            self.nodes[node.id] = node
            for name in (node.label, *node.aliases):
                if not name:
                    continue
                key = name.lower()
                if node.id not in self.by_name[key]:
                    self.by_name[key].append(node.id)
                for word in key.split():
                    self.by_word[word].add(node.id)
        for name, ordered in (senses or {}).items():
            known = [n for n in ordered if n in self.nodes]
            if name in self.by_name:
                rest = [n for n in self.by_name[name] if n not in known]
                self.by_name[name] = known + rest

    def __contains__(self, name: str) -> bool:
        return name in self.by_name

    def knows(self, name: str) -> bool:
        return name in self.by_name

    def named(self, name: str) -> list[str]:
        return list(self.by_name.get(name, ()))


class EmbeddingCache(Protocol):
    def get_many(self, ids: Sequence[str], model: str) -> dict[str, np.ndarray]: ...

    def put_many(self, vectors: dict[str, np.ndarray], model: str) -> None: ...


class MemoryEmbeddingCache:
    def __init__(self):
        self._store: dict[tuple[str, str], np.ndarray] = {}

    def get_many(self, ids, model):
        return {i: self._store[(model, i)] for i in ids if (model, i) in self._store}

    def put_many(self, vectors, model):
        for i, v in vectors.items():
            self._store[(model, i)] = v


def node_vectors(nodes: Sequence[NodeText], embedder: Embedder, cache: EmbeddingCache) -> dict[str, np.ndarray]:
    """Embeddings of the nodes' texts, computing only those missing from ``cache`` (then stored there)."""
    found = cache.get_many([n.id for n in nodes], embedder.name)
    missing = [n for n in nodes if n.id not in found]
    if missing:
        fresh = dict(zip([n.id for n in missing], embedder.encode([n.embedding_text() for n in missing])))
        cache.put_many(fresh, embedder.name)
        found.update(fresh)
    return found


@dataclass
class Candidate:
    node_id: str
    label: str | None
    score: float
    lexical: float
    semantic: float
    prior: float
    match: str

    def as_dict(self) -> dict:
        return {"node": self.node_id, "label": self.label, "score": round(self.score, 4),
                "lexical": round(self.lexical, 4), "semantic": round(self.semantic, 4), "prior": round(self.prior, 4),
                "match": self.match}


LEXICAL_WEIGHT, SEMANTIC_WEIGHT, PRIOR_WEIGHT = 0.45, 0.45, 0.10


class PhraseMapper:
    """Free phrase → scored taxonomy nodes (see the module docstring).

    ``neighbours(vector, k)`` (optional) returns ``[(node_id, cosine)]`` from a precomputed node-embedding
    index, adding candidates that share no word with the phrase.
    """

    def __init__(self, lexicon: Lexicon, *, embedder: Embedder | None = None, cache: EmbeddingCache | None = None,
                 neighbours: Callable[[np.ndarray, int], list[tuple[str, float]]] | None = None,
                 exceptions: dict[str, str] | None = None, max_candidates: int = 40):
        self.lexicon, self.embedder = lexicon, embedder
        self.cache = cache if cache is not None else MemoryEmbeddingCache()
        self.neighbours, self.exceptions, self.max_candidates = neighbours, exceptions, max_candidates

    def normalize(self, text: str) -> str:
        return normalize_phrase(text, lexicon=self.lexicon.knows, exceptions=self.exceptions)

    def _lexical(self, phrase: str) -> dict[str, tuple[float, str, int]]:
        """node → (lexical score, how it matched, sense rank)."""
        found: dict[str, tuple[float, str, int]] = {}

        def add(ids: list[str], score: float, how: str) -> None:
            for rank, node in enumerate(ids):
                if node not in found or found[node][0] < score:
                    found[node] = (score, how, rank)

        add(self.lexicon.named(phrase), 1.0, f"exact name {phrase!r}")
        chunk = head_chunk(phrase)
        if chunk != phrase:
            phrase = singularize(chunk, lexicon=self.lexicon.knows, exceptions=self.exceptions) if " " not in chunk \
                else chunk
            add(self.lexicon.named(phrase), 0.9, f"head {phrase!r}")
        words = phrase.split()
        # Drop modifiers from the left: "large striped red circle" → "striped red circle" → ... → "circle".
        for k in range(1, len(words)):
            tail = " ".join(words[k:])
            add(self.lexicon.named(tail), 0.9 - 0.1 * (len(words) - k == 1), f"head {tail!r}")
        head = head_noun(phrase)
        if len(found) < self.max_candidates:
            query = set(words)
            shared: list[tuple[float, str]] = []
            for node in self.lexicon.by_word.get(head, ()):
                text = self.lexicon.nodes[node]
                name_words = set((text.label or "").lower().split())
                overlap = len(query & name_words) / len(query | name_words)
                shared.append((overlap, node))
            shared.sort(key=lambda t: (-t[0], t[1]))
            for overlap, node in shared[: self.max_candidates]:
                if node not in found:
                    found[node] = (0.6 * overlap, f"shares {head!r}", 99)
        return found

    def map(self, text: str, *, limit: int = 5) -> list[Candidate]:
        phrase = self.normalize(text)
        if not phrase:
            return []
        lexical = self._lexical(phrase)
        semantic: dict[str, float] = {}
        if self.embedder is not None:
            query = self.embedder.encode([phrase])[0]
            if self.neighbours is not None:
                for node, cosine in self.neighbours(query, self.max_candidates):
                    semantic[node] = cosine
                    lexical.setdefault(node, (0.0, "embedding neighbour", 99))
            pool = sorted(lexical, key=lambda n: (-lexical[n][0], lexical[n][2], n))[: self.max_candidates * 2]
            lexical = {n: lexical[n] for n in pool}
            texts = [self.lexicon.nodes[n] for n in pool if n in self.lexicon.nodes]
            vectors = node_vectors(texts, self.embedder, self.cache)
            for node, vector in vectors.items():
                semantic[node] = float(vector @ query)
        candidates = []
        for node, (score, how, rank) in lexical.items():
            text = self.lexicon.nodes.get(node)
            popularity = text.popularity if text else 0
            prior = 0.5 / (1 + rank) + 0.5 * min(1.0, math.log1p(popularity) / math.log(1000))
            cosine = semantic.get(node, 0.0)
            total = LEXICAL_WEIGHT * score + SEMANTIC_WEIGHT * max(cosine, 0.0) + PRIOR_WEIGHT * prior
            candidates.append(Candidate(node, text.label if text else None, total, score, cosine, prior, how))
        candidates.sort(key=lambda c: (-c.score, c.node_id))
        return candidates[:limit]
