"""Hard negatives: phrases absent from an image that the current SAM 3 still segments (docs/data-engine.md §5).

Two steps, both plain functions:
1. :func:`propose_negatives` — for a verified positive's node: its siblings, cousins and uncles in the
   taxonomy, then embedding neighbours, never an ancestor or a descendant (those are not negatives:
   every "tabby cat" is a "cat"). Each candidate says why it was proposed.
2. :func:`check_adversarial` — run the candidates through a ``propose(image, phrases)`` callable (SAM 3
   in production, a stub in tests): no prediction → discarded; predictions whose union overlaps the
   positive's masks with IoU ≥ ``threshold`` → kept (the model confuses the two); otherwise discarded.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from model import rle as rle_lib
from ontology.taxonomy import Taxonomy

ROUTES = ("sibling", "cousin", "uncle", "embedding")


@dataclass
class NegativeCandidate:
    node_id: str
    phrase: str
    route: str  # one of ROUTES
    reason: str
    similarity: float | None = None


@dataclass
class AdversarialCheck:
    candidate: NegativeCandidate
    kept: bool
    overlap: float  # IoU of the candidate's predicted masks (union) with the positive's masks (union)
    instances: int
    reason: str


def propose_negatives(taxonomy: Taxonomy, positive_node: str, *, phrase_of: Callable[[str], str | None],
                      neighbours: Iterable[tuple[str, float]] = (), exclude_phrases: Iterable[str] = (),
                      limit: int = 30) -> list[NegativeCandidate]:
    """Up to ``limit`` candidates, siblings first, then cousins, uncles and embedding neighbours.

    ``phrase_of(node_id)`` gives a node's phrase (None: skip the node); ``neighbours`` are
    ``(node_id, cosine)`` pairs nearest to the positive; ``exclude_phrases`` (e.g. the positive's own
    phrase and the image's other positives) are never proposed.
    """
    taken = set(exclude_phrases)
    out: list[NegativeCandidate] = []
    parents = set(taxonomy.parents(positive_node))

    def related(node: str) -> bool:
        return (node == positive_node or taxonomy.is_ancestor(node, positive_node)
                or taxonomy.is_ancestor(positive_node, node))

    def add(node: str, route: str, reason: str, similarity: float | None = None) -> None:
        if len(out) >= limit or node not in taxonomy or related(node):
            return
        phrase = phrase_of(node)
        if not phrase or phrase in taken:
            return
        taken.add(phrase)
        out.append(NegativeCandidate(node, phrase, route, reason, similarity))

    for sibling in taxonomy.siblings(positive_node):
        shared = sorted(parents & set(taxonomy.parents(sibling)))
        add(sibling, "sibling", f"sibling: shares the parent {', '.join(shared)}")
    uncles = taxonomy.uncles(positive_node)
    for cousin in taxonomy.cousins(positive_node):
        via = sorted(set(taxonomy.parents(cousin)) & set(uncles))
        add(cousin, "cousin", f"cousin: child of {', '.join(via)}, a sibling of a parent")
    for uncle in uncles:
        add(uncle, "uncle", "uncle: a sibling of a parent")
    for node, cosine in neighbours:
        add(node, "embedding", f"embedding neighbour (cosine {cosine:.2f})", cosine)
    return out


def _instances(proposal: Any) -> list[dict]:
    items = proposal["instances"] if isinstance(proposal, dict) else proposal.instances
    return [i["rle"] if isinstance(i, dict) else i.rle for i in items]


def _phrase(proposal: Any) -> str:
    return proposal["phrase"] if isinstance(proposal, dict) else proposal.phrase


def check_adversarial(image: Any, positive_masks: Sequence[dict], candidates: Sequence[NegativeCandidate], *,
                      propose: Callable[[Any, list[str]], Sequence[Any]], threshold: float) -> list[AdversarialCheck]:
    """One decision per candidate (see the module docstring). ``positive_masks`` are COCO RLEs.

    ``propose(image, phrases)`` returns one proposal per phrase (``PhraseProposal`` or its JSON).
    """
    if not candidates:
        return []
    if not positive_masks:
        raise ValueError("the positive has no masks to compare with")
    positive = rle_lib.merge(list(positive_masks))
    proposals = {_phrase(p): p for p in propose(image, [c.phrase for c in candidates])}
    checks = []
    for candidate in candidates:
        proposal = proposals.get(candidate.phrase)
        masks = _instances(proposal) if proposal is not None else []
        if not masks:
            checks.append(AdversarialCheck(candidate, False, 0.0, 0, "discarded: SAM 3 predicts nothing for it"))
            continue
        overlap = float(rle_lib.iou([rle_lib.merge(masks)], [positive])[0][0])
        if overlap >= threshold:
            reason = (f"kept: SAM 3 predicts {len(masks)} mask(s) overlapping the positive's masks "
                      f"(IoU {overlap:.2f} ≥ {threshold:.2f})")
        else:
            reason = f"discarded: predictions do not overlap the positive's masks enough (IoU {overlap:.2f} < {threshold:.2f})"
        checks.append(AdversarialCheck(candidate, overlap >= threshold, overlap, len(masks), reason))
    return checks
