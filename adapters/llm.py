"""Reply drafts from any OpenAI-compatible chat completions endpoint (CRM_LLM_URL, _API_KEY,
_MODEL). Optional: without it, suggestions are the retrieved ones alone.

It sends the least it can: the fan's last message with the fan's name, first name and handle
already made placeholders, and the retrieved reply templates; no ids, no names, no ``user``
field. Any failure (timeout, refused connection, non-2xx, a body that is not the protocol's,
an answer that is not a list of replies) is logged as a warning and answered as None, so the
caller falls back to the retrieved replies: a suggestion is a help, never a reason for a 5xx.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import structlog

log = structlog.get_logger(__name__)

_SYSTEM = (
    "You help a creator answer a fan's message on a subscription platform. Write short, warm"
    " replies in the language of the fan's message, in the creator's voice. Keep placeholders"
    " such as {{first_name}} exactly as written; never invent a name. Use the creator's past"
    " replies that worked as examples of tone and offers. Answer with a JSON array of strings"
    " and nothing else."
)
_MAX_REPLY = 1000


class ChatCompletionsWriter:
    def __init__(
        self, client: httpx.AsyncClient, *, url: str, api_key: str, model: str, timeout: float
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._endpoint = f"{url.rstrip('/')}/chat/completions"
        self._api_key = api_key
        self._model = model

    async def write(self, fan_message: str, candidates: list[str], count: int) -> list[str] | None:
        examples = "\n".join(f"- {c}" for c in candidates) or "(none yet)"
        body = {
            "model": self._model,
            "messages": [
                {"role": "system", "content": _SYSTEM},
                {
                    "role": "user",
                    "content": f"The fan wrote:\n{fan_message}\n\nPast replies that worked:\n"
                    f"{examples}\n\nWrite {count} different replies.",
                },
            ],
        }
        try:
            # httpx's timeout bounds each read; this bounds the whole exchange (a server that
            # drips its answer byte by byte would pass every read's).
            async with asyncio.timeout(self._timeout):
                response = await self._client.post(
                    self._endpoint,
                    json=body,
                    headers={"Authorization": f"Bearer {self._api_key}"},
                )
            response.raise_for_status()
            return drafts_from(response.json(), count)
        except (httpx.TimeoutException, TimeoutError):
            log.warning(
                "reply drafts timed out: the retrieved replies answer", endpoint=self._endpoint
            )
        except httpx.HTTPStatusError as error:
            log.warning(
                "reply drafts refused: the retrieved replies answer",
                status=error.response.status_code,
            )
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as error:
            log.warning(
                "reply drafts unusable: the retrieved replies answer", error=type(error).__name__
            )
        return None


def drafts_from(answer: Any, count: int) -> list[str]:
    """The drafts out of a chat completion: its first choice's content, a JSON array of
    strings (a model may wrap it in a code fence)."""
    content = answer["choices"][0]["message"]["content"]
    if not isinstance(content, str):
        raise TypeError("content is not text")
    text = content.strip().removeprefix("```json").removeprefix("```").removesuffix("```")
    drafts = json.loads(text)
    if not isinstance(drafts, list) or not all(isinstance(d, str) for d in drafts):
        raise TypeError("not a list of replies")
    replies = [d.strip()[:_MAX_REPLY] for d in drafts if d.strip()]
    if not replies:
        raise ValueError("no reply")
    return replies[:count]
