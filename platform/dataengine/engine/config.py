"""A project's engine settings: defaults merged with Project.config."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class ProjectConfig:
    # Proposals kept from the model: score = sigmoid(query) x sigmoid(presence).
    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    max_instances: int = 20
    # Human task priority: positives found by the model first, so masks reach training sooner.
    mv_priority: int = 10
    ev_priority: int = 5
    correction_priority: int = 1

    @classmethod
    def of(cls, project) -> "ProjectConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(project.config or {}) - known
        if unknown:
            raise ValueError(f"unknown project config keys: {sorted(unknown)}")
        return cls(**(project.config or {}))

    def as_dict(self) -> dict:
        return asdict(self)
