"""Reply suggestions' rules: how a past reply becomes a template, and what an outcome is worth.

A reply written to one fan generalises once that fan's name is a placeholder again: "Thanks
Ann!" is "Thanks {{first_name}}!", which ``domain.campaign.render`` fills for the next fan.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

Outcome = Literal["replied", "purchased"]

# A purchase is what a PPV reply is for, and rarer than a reply: it counts for three replies.
OUTCOME_WEIGHTS: dict[str, float] = {"purchased": 3.0, "replied": 1.0}


def templatise(content: str, *, name: str | None, handle: str | None) -> str:
    """``content`` with the fan's name, first name and handle as placeholders; the longest
    first, so a full name never leaves its surname behind. A one-word name is a first name
    (for the next fan, "Hi Ann" is "Hi Dan", not "Hi Dan Brown"); an ``@`` before the handle
    stays where it was written."""
    words = name.split() if name else []
    values = [
        (" ".join(words) if len(words) > 1 else None, "{{name}}"),
        (words[0] if words else None, "{{first_name}}"),
        (handle.strip().lstrip("@") if handle else None, "{{handle}}"),
    ]
    for value, placeholder in sorted(
        ((v, p) for v, p in values if v), key=lambda pair: -len(pair[0])
    ):
        # Whole words only: the first name "Al" must not turn "Also" into a placeholder.
        pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, value.split())) + r"(?!\w)"
        # A function, not a replacement string: nothing in it is read as a group reference.
        content = re.sub(pattern, _literally(placeholder), content, flags=re.IGNORECASE)
    return content


def _literally(text: str) -> Callable[[re.Match[str]], str]:
    return lambda _: text
