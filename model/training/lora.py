"""LoRA adapters for SAM 3 (peft): attention projections of every block, plus a full copy of the scoring head.

Adapters save as peft's ``adapter_config.json`` + ``adapter_model.safetensors`` and reload bit-exactly
onto the same base weights. For serving, ``merged_copy`` folds them into a plain Sam3Model.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model
from transformers import Sam3Model


@dataclass
class LoraSettings:
    """Which modules get adapters and their size (docs/infrastructure.md: SAM 3 with peft 0.21)."""

    rank: int = field(default=8, metadata={"help": "LoRA rank r"})
    alpha: int = field(default=16, metadata={"help": "LoRA alpha (scale alpha / r)"})
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    modules_to_save: list[str] = field(default_factory=lambda: ["dot_product_scoring"])

    def to_dict(self) -> dict:
        return asdict(self)


def apply_lora(model: Sam3Model, settings: LoraSettings) -> PeftModel:
    """Wrap ``model`` (modified in place) so that only the adapters and ``modules_to_save`` train."""
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.target_modules), modules_to_save=list(settings.modules_to_save))
    return get_peft_model(model, config)


def inner_model(model: Sam3Model | PeftModel) -> Sam3Model:
    """The Sam3Model whose submodules a forward should call (LoRA layers included)."""
    return model.base_model.model if isinstance(model, PeftModel) else model


def save_adapter(model: PeftModel, folder: str | Path) -> Path:
    folder = Path(folder)
    model.save_pretrained(str(folder))
    return folder


def load_adapter(base: Sam3Model, folder: str | Path, *, trainable: bool = False) -> PeftModel:
    """``base`` (modified in place) with the adapters from ``folder``."""
    return PeftModel.from_pretrained(base, str(folder), is_trainable=trainable)


def merged_copy(model: PeftModel) -> Sam3Model:
    """A plain Sam3Model with the adapters folded in; ``model`` is left as it was."""
    return copy.deepcopy(model).merge_and_unload()
