"""A project's engine settings: defaults merged with Project.config."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from model.sam3 import DEFAULT_DEDUPE_IOU


def _in_unit_interval(value) -> bool:
    """A number (not a bool) in (0, 1]."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0.0 < value <= 1.0


@dataclass(frozen=True)
class ProjectConfig:
    # Proposals kept from the model: score = sigmoid(query) x sigmoid(presence).
    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    max_instances: int = 20
    # A mask overlapping a better one of its datapoint by more than this IoU is dropped (one instance, two masks);
    # None keeps duplicates. Applied before max_instances, so the kept masks are distinct.
    dedupe_iou: float | None = DEFAULT_DEDUPE_IOU
    # Draw every proposed mask again with the click tracker the active model names (model.sam3.refine): for a
    # concept model that sees images coarser than its tracker, as the tiny SAM 3 does (README: "Mask refinement").
    refine_masks: bool = False
    # Human task priority: positives found by the model first, so masks reach training sooner.
    mv_priority: int = 10
    ev_priority: int = 5
    correction_priority: int = 1
    # Phase 2 routing. Auto-accept only where the verifier version's calibrated thresholds (picked on held-out
    # human verdicts for this precision) are met; everything else goes to humans.
    target_precision: float = 0.98
    # Masks the verifier may drop unseen in a human check must be wrong at this precision (its version's
    # ``mv_reject``, certified on held-out verdicts): a good mask dropped costs a correction job, a look 2 s.
    drop_precision: float = 0.995
    # An item the AI cannot certify gets a human check (Phase 1's questions: MV of the masks to check, then EV,
    # ~24 s for a negative) instead of a correction from scratch (~120 s); a human "reject" still sends it to
    # correction. It goes straight to correction when EV judged the same masks and its P(accept) is below this
    # (annotation.verifying.decide_route). 1.01: every uncertified item whose masks EV judged goes to correction
    # (with no mask to check, a human EV still comes first).
    human_check_min_ev: float = 0.5
    audit_rate: float = 0.05  # share of auto-accepted datapoints sent to human review
    presence_margin: float = 0.1  # SAM 3 presence this close to 0.5 is failure-prone
    crowded_instances: int = 10
    tiny_instance_fraction: float = 0.001  # of the image area
    low_score_phrases: tuple = ()  # phrases where the current model's gold score is low

    @classmethod
    def of(cls, project) -> "ProjectConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(project.config or {}) - known
        if unknown:
            raise ValueError(f"unknown project config keys: {sorted(unknown)}")
        values = dict(project.config or {})
        if "low_score_phrases" in values:
            values["low_score_phrases"] = tuple(values["low_score_phrases"])
        return cls(**values)

    def __post_init__(self):
        for name in ("target_precision", "drop_precision"):
            if not _in_unit_interval(getattr(self, name)):
                raise ValueError(f"{name} must be a number in (0, 1]")
        if not isinstance(self.refine_masks, bool):
            raise ValueError("refine_masks must be true or false")
        if self.dedupe_iou is not None and not _in_unit_interval(self.dedupe_iou):
            raise ValueError("dedupe_iou must be null or a number in (0, 1]")

    def as_dict(self) -> dict:
        return asdict(self)
