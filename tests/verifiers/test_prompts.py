"""Versioned templates, the option lists (the platform's verdict values) and answer parsing."""
from __future__ import annotations

import random

import pytest

from verifiers import options, prompts
from verifiers.errors import VerifierInputError


def test_option_strings_are_the_platform_verdict_values():
    assert options.MV_OPTIONS == ("accept", "accept_as_text", "flag_label", "whole_image", "reject")
    assert options.EV_OPTIONS == ("accept", "reject", "reject_unseparated", "flag_label", "whole_image",
                                  "ungroundable")


def test_templates_are_versioned_files():
    assert prompts.TEMPLATE_VERSIONS == {"mv": "mv.v1", "ev": "ev.v2"}
    for task, version in prompts.TEMPLATE_VERSIONS.items():
        template = prompts.load_template(version)
        assert (prompts.PROMPTS_DIR / f"{version}.md").is_file()
        assert template.task == task and template.body.count(prompts.IMAGE_TOKEN) == 1


def test_ev_v2_draws_thicker_boxes_and_asks_the_same_words():
    v1, v2 = prompts.load_template("ev.v1"), prompts.load_template("ev.v2")
    assert v1.body == v2.body
    assert v1.box_line(224) is None  # the renderer's default: 2 px at 224, 1 px at 112
    assert (v2.box_line(224), v2.box_line(112)) == (4, 2)


def test_mv_question_lists_five_lettered_options_and_the_phrase():
    text = prompts.template_for("mv").render(phrase="red circle", order=options.MV_OPTIONS)
    assert "Phrase : red circle" in text
    for line in ("(A) Accept", "(B) Accept as text", "(C) Flag label", "(D) Whole image", "(E) Reject"):
        assert line in text
    assert "(F)" not in text and text.rstrip().endswith("Answer :")


def test_ev_question_says_zero_boxes_when_there_are_none():
    template = prompts.template_for("ev")
    assert "zero boxes" in template.render(phrase="dog", order=options.EV_OPTIONS, n_boxes=0)
    assert "3 boxes" in template.render(phrase="dog", order=options.EV_OPTIONS, n_boxes=3)
    assert "(F) Ungroundable / Vague / Unsure" in template.render(phrase="dog", order=options.EV_OPTIONS)


def test_shuffled_order_is_a_permutation_and_letters_map_back():
    order = options.shuffled_order("ev", random.Random(3))
    assert sorted(order) == sorted(options.EV_OPTIONS) and order != options.EV_OPTIONS
    assert options.option_of_letter(order, " (B) ") == order[1]


@pytest.mark.parametrize("answer", ["G", "", "Accept", "AB", "f"])
def test_an_answer_that_is_not_a_shown_letter_is_an_error(answer):
    with pytest.raises(VerifierInputError):
        options.option_of_letter(options.MV_OPTIONS, answer)  # five options: A-E only


@pytest.mark.parametrize("phrase", ["", "   ", None, "x" * 201, "a <|image|> b", "{phrase}"])
def test_bad_phrases_are_refused(phrase):
    with pytest.raises(VerifierInputError):
        prompts.check_phrase(phrase)


def test_unknown_task_or_option_is_refused():
    with pytest.raises(VerifierInputError):
        options.options_for("correction")
    with pytest.raises(VerifierInputError):
        options.check_option("mv", "reject_unseparated")
