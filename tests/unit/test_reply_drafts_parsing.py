"""What counts as drafts in a chat completion: its first choice's content, a JSON array of
strings; anything else is a failure the caller falls back from."""

from __future__ import annotations

import pytest

from adapters.llm import drafts_from


def completion(content: object) -> dict[str, object]:
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


def test_a_json_array_of_strings_is_the_drafts_up_to_the_count() -> None:
    assert drafts_from(completion('["a", " b ", "", "c"]'), 2) == ["a", "b"]


def test_a_fenced_array_is_read_as_the_array() -> None:
    assert drafts_from(completion('```json\n["hi {{first_name}}"]\n```'), 3) == [
        "hi {{first_name}}"
    ]


@pytest.mark.parametrize(
    "answer",
    [
        {"choices": []},
        {"error": "overloaded"},
        completion("Sure, here are three replies"),
        completion('{"replies": ["a"]}'),
        completion("[1, 2]"),
        completion("[]"),
        completion(None),
    ],
)
def test_anything_else_is_refused(answer: dict[str, object]) -> None:
    with pytest.raises((KeyError, IndexError, TypeError, ValueError)):
        drafts_from(answer, 3)
