"""Versioned prompt templates (``verifiers/prompts/<task>.v<N>.md``) and the questions built from them.

A template file starts with a front matter block (``---`` lines) naming its ``version`` and ``task``; the rest is
the prompt, with ``{phrase}``, ``{options}`` and (EV) ``{boxes}`` placeholders and one ``<|image|>`` token.
Templates are never edited in place: a change is a new file (``mv.v2.md``) and a new entry in
TEMPLATE_VERSIONS, so every recorded verdict names the exact words the model saw. The front matter also fixes
how the image is drawn where that changed (``box_line``), and a verifier keeps using the templates it was trained
with (its manifest's ``template_versions``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from verifiers.errors import VerifierInputError
from verifiers.options import options_for, render_options

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
TEMPLATE_VERSIONS = {"mv": "mv.v1", "ev": "ev.v2"}
IMAGE_TOKEN = "<|image|>"
MAX_PHRASE_CHARS = 200


@dataclass(frozen=True)
class Template:
    version: str
    task: str
    body: str
    meta: dict

    def render(self, *, phrase: str, order: Sequence[str], n_boxes: int = 0) -> str:
        """The question text for ``phrase`` with the options in ``order`` (EV: ``n_boxes`` accepted masks)."""
        fields = {"phrase": phrase, "options": render_options(order)}
        if "{boxes}" in self.body:
            fields["boxes"] = "zero boxes" if n_boxes == 0 else ("one box" if n_boxes == 1 else f"{n_boxes} boxes")
        return self.body.format(**fields)

    def box_line(self, size: int) -> int | None:
        """EV: the width in pixels of the boxes drawn on a ``size``-pixel render, from the front matter's
        ``box_line`` (a fraction of the render size); None for templates without it (ev.v1): the renderer's default."""
        fraction = self.meta.get("box_line")
        return max(1, round(size * float(fraction))) if fraction else None


def _parse(text: str, path: Path) -> Template:
    match = re.match(r"---\n(.*?)\n---\n(.*)\Z", text, re.S)
    if not match:
        raise ValueError(f"{path}: a template starts with a --- front matter block")
    meta = dict(line.split(": ", 1) for line in match.group(1).splitlines() if line.strip())
    body = match.group(2).rstrip("\n")
    if body.count(IMAGE_TOKEN) != 1:
        raise ValueError(f"{path}: the prompt needs exactly one {IMAGE_TOKEN}")
    return Template(version=meta["version"], task=meta["task"], body=body, meta=meta)


@lru_cache(maxsize=None)
def load_template(version: str) -> Template:
    """The template ``version`` (e.g. "mv.v1") from PROMPTS_DIR."""
    path = PROMPTS_DIR / f"{version}.md"
    if not path.is_file():
        raise ValueError(f"no prompt template {version!r} in {PROMPTS_DIR}")
    template = _parse(path.read_text(), path)
    if template.version != version:
        raise ValueError(f"{path} says version {template.version!r}")
    options_for(template.task)
    return template


def template_for(task: str) -> Template:
    """The current template of ``task`` (TEMPLATE_VERSIONS)."""
    options_for(task)
    return load_template(TEMPLATE_VERSIONS[task])


def check_phrase(phrase: object) -> str:
    """The phrase, single-spaced; VerifierInputError for a non-string, empty or over-long phrase."""
    if not isinstance(phrase, str) or not phrase.strip():
        raise VerifierInputError("the phrase must be a non-empty string")
    text = " ".join(phrase.split())
    if len(text) > MAX_PHRASE_CHARS:
        raise VerifierInputError(f"the phrase has {len(text)} characters; at most {MAX_PHRASE_CHARS}")
    if IMAGE_TOKEN in text or "{" in text or "}" in text:
        raise VerifierInputError("the phrase contains reserved characters")
    return text
