"""The simulated annotator's settings: error rates, IoU thresholds, seed and time model."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from simulated_annotator.time_model import TimeModel


@dataclass(frozen=True)
class AnnotatorConfig:
    """How fallible the simulated annotator is and how it judges masks.

    Mistakes are random with ``seed`` and never chosen: a mask verification flips accept/reject with
    probability ``error_rate_mv``; an exhaustivity verification flips accept/reject with
    ``error_rate_ev``; in a correction, each instance that has to be added is missed with
    ``error_rate_correction``. ``accept_iou``: a mask is correct when its best IoU with a true instance
    reaches it. ``cover_iou``: a true instance counts as covered (EV, correction matching, escaped errors)
    at this IoU (docs/simulated-annotator.md §5 uses 0.5).
    """

    error_rate_mv: float = 0.03
    error_rate_ev: float = 0.03
    error_rate_correction: float = 0.03
    accept_iou: float = 0.75
    cover_iou: float = 0.5
    seed: int = 0
    time_model: TimeModel = field(default_factory=TimeModel)

    def __post_init__(self):
        for name in ("error_rate_mv", "error_rate_ev", "error_rate_correction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"AnnotatorConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.cover_iou <= self.accept_iou <= 1.0:
            raise ValueError("AnnotatorConfig needs 0 < cover_iou <= accept_iou <= 1")

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """Two lines with every setting, for reports."""
        return (f"SIMULATED annotator settings: error rates MV {self.error_rate_mv:.1%}, EV {self.error_rate_ev:.1%}, "
                f"correction {self.error_rate_correction:.1%} per missing instance; accept IoU {self.accept_iou:g}, "
                f"cover IoU {self.cover_iou:g}; seed {self.seed}\n{self.time_model.describe()}")
