"""A reply to one fan made a template for the next: the fan's name and handle as placeholders,
which the campaigns' ``render`` fills again."""

from __future__ import annotations

from domain.campaign import render
from domain.reply_suggestions import templatise


def test_a_full_name_its_first_name_and_the_handle_become_placeholders() -> None:
    written = "Ann Smith! Ann, I saw @ann_s and ANN_S"
    assert templatise(written, name="Ann Smith", handle="ann_s") == (
        "{{name}}! {{first_name}}, I saw @{{handle}} and {{handle}}"
    )


def test_a_one_word_name_is_a_first_name() -> None:
    template = templatise("Thank you Ann!", name="Ann", handle=None)
    assert template == "Thank you {{first_name}}!"
    assert render(template, name="Dan Brown", handle="dan_b") == "Thank you Dan!"


def test_only_whole_words_are_names() -> None:
    assert templatise("Also Al, alright", name="Al", handle="al") == (
        "Also {{first_name}}, alright"
    )


def test_a_reply_without_the_fans_name_is_kept_as_written() -> None:
    assert templatise("See you tonight x", name="Ann", handle="ann") == "See you tonight x"
