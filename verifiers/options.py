"""The answer options of the two verifiers: the platform's verdict values, their display names, the letters.

The strings in MV_OPTIONS / EV_OPTIONS are stored by the platform as verdicts; never rename them. A question shows
the options in some order (shuffled in training) as lettered lines "(A) Accept"; the model answers with one letter.
"""
from __future__ import annotations

import random
from typing import Sequence

from verifiers.errors import VerifierInputError

MV_OPTIONS = ("accept", "accept_as_text", "flag_label", "whole_image", "reject")
EV_OPTIONS = ("accept", "reject", "reject_unseparated", "flag_label", "whole_image", "ungroundable")
OPTIONS = {"mv": MV_OPTIONS, "ev": EV_OPTIONS}
TASKS = ("mv", "ev")

# How each option reads in a question (docs/data-engine.md §3).
DISPLAY_NAMES = {
    "accept": "Accept",
    "accept_as_text": "Accept as text",
    "flag_label": "Flag label",
    "whole_image": "Whole image",
    "reject": "Reject",
    "reject_unseparated": "Reject but unseparated",
    "ungroundable": "Ungroundable / Vague / Unsure",
}
LETTERS = ("A", "B", "C", "D", "E", "F")
# MV options that keep a mask (the platform's MV_ACCEPTS).
MV_ACCEPTS = ("accept", "accept_as_text")


def options_for(task: str) -> tuple[str, ...]:
    """The canonical option tuple of ``task`` ("mv" or "ev")."""
    try:
        return OPTIONS[task]
    except KeyError:
        raise VerifierInputError(f"unknown verifier task {task!r}; expected one of {TASKS}") from None


def check_option(task: str, option: str) -> str:
    """``option`` if it is one of the task's options; VerifierInputError otherwise."""
    if option not in options_for(task):
        raise VerifierInputError(f"{option!r} is not a {task.upper()} option; expected one of {options_for(task)}")
    return option


def shuffled_order(task: str, rng: random.Random) -> tuple[str, ...]:
    """The task's options in a random order (training shows them shuffled, docs/data-engine.md §3)."""
    order = list(options_for(task))
    rng.shuffle(order)
    return tuple(order)


def render_options(order: Sequence[str]) -> str:
    """Lettered option lines for a question: "(A) Accept" one per line, in ``order``."""
    return "\n".join(f"({letter}) {DISPLAY_NAMES[option]}" for letter, option in zip(LETTERS, order))


def option_of_letter(order: Sequence[str], answer: str) -> str:
    """Parse a model's raw answer (a letter, possibly with spaces or a parenthesis) into an option of ``order``.

    Raises VerifierInputError for anything that is not one of the shown letters: the caller routes the item
    to a human instead of trusting it.
    """
    text = answer.strip().strip("().:").strip()
    if len(text) != 1 or text not in LETTERS[: len(order)]:
        raise VerifierInputError(f"verifier answer {answer!r} is not one of the letters "
                                 f"{LETTERS[: len(order)]} shown in the question")
    return order[LETTERS.index(text)]
