"""Bodies of the saved replies (scripts) and sensitive words endpoints (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

from adapters.http.campaign_schemas import Template
from adapters.http.messaging_schemas import MediaUrls, PriceCents
from adapters.http.openapi import NOT_BLANK, rule, schema
from adapters.http.schemas import NO_NUL, Body
from application.script_queries import ScriptView
from domain import script as rules
from domain import sensitive_words as words_rules
from domain.script import Script

ScriptName = Annotated[
    str,
    rule(
        f"Trimmed, 1-{rules.MAX_NAME} characters, no NUL",
        max_length=rules.MAX_NAME,
        all_of=[schema(pattern=NO_NUL), schema(pattern=NOT_BLANK)],
    ),
]
Word = Annotated[
    str,
    rule(
        f"Trimmed, 1-{words_rules.MAX_WORD} characters, no NUL; matched case-insensitively,"
        " as a whole word",
        max_length=words_rules.MAX_WORD,
        all_of=[schema(pattern=NO_NUL), schema(pattern=NOT_BLANK)],
    ),
]


class CreateScriptBody(Body):
    name: ScriptName
    content: Template
    price_cents: PriceCents = 0
    media_urls: MediaUrls = []
    # "workspace": usable from every account of the workspace (written on the account that
    # founded it, which the caller must be able to act on).
    scope: Literal["account", "workspace"] = "account"


class UpdateScriptBody(Body):
    """What is absent stays as it is."""

    name: ScriptName | UnsetType = UNSET
    content: Template | UnsetType = UNSET
    price_cents: PriceCents | UnsetType = UNSET
    media_urls: MediaUrls | UnsetType = UNSET


class SensitiveWordsBody(Body):
    words: Annotated[
        list[Word],
        rule(
            f"The whole list (it replaces the one before), at most {words_rules.MAX_WORDS}",
            max_items=words_rules.MAX_WORDS,
        ),
    ]


class ScriptMetricsOut(msgspec.Struct, kw_only=True, rename="camel"):
    sent: int
    purchased: int
    revenue_cents: int


class ScriptOut(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    id: int
    name: str
    content: str
    price_cents: int
    media_urls: list[str]
    version: int
    scope: Literal["account", "workspace"]
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # From the messages sent with it (their sends and purchases), on reads only.
    metrics: ScriptMetricsOut | None = None

    @classmethod
    def from_view(cls, view: ScriptView) -> ScriptOut:
        return cls(
            id=view.script_id,
            name=view.name,
            content=view.content,
            price_cents=view.price_cents,
            media_urls=view.media_urls,
            version=view.version,
            scope="workspace" if view.shared else "account",
            created_at=view.created_at,
            updated_at=view.updated_at,
            metrics=ScriptMetricsOut(
                sent=view.metrics.sent,
                purchased=view.metrics.purchased,
                revenue_cents=view.metrics.revenue_cents,
            ),
        )

    @classmethod
    def from_aggregate(cls, script: Script) -> ScriptOut:
        return cls(
            id=script.script_id,
            name=script.name,
            content=script.content,
            price_cents=script.price_cents,
            media_urls=[url for _, url in script.attachments],
            version=script.version,
            scope="workspace" if script.shared else "account",
        )


class ScriptChangedOut(msgspec.Struct, kw_only=True, rename="camel"):
    """A command's answer: the script as it left it, and the log position to read it at."""

    script: ScriptOut
    position: int


class ScriptEnvelope(msgspec.Struct, kw_only=True, rename="camel"):
    script: ScriptOut


class ScriptListOut(msgspec.Struct, kw_only=True, rename="camel"):
    scripts: list[ScriptOut]
    next_cursor: str | None


class ScriptDeletedOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: int
    deleted: bool
    position: int


class SensitiveWordsOut(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    words: list[str]
    # On a change: the log position a read sees it at.
    position: int | None = None
