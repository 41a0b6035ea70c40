"""The Script aggregate: a saved reply a chatter sends a fan instead of typing it.

    written ──update──► written ──delete──► deleted

Its content is a template with the bulk campaigns' placeholders (``{{name}}``,
``{{first_name}}``, ``{{handle}}``, each with an optional fallback: domain/campaign.py's
``check_template`` and ``render``, the one renderer), rendered for each recipient when sent.
A script belongs to one account (its tenant), or, ``shared``, to every account of the
workspace its tenant founded (written on that founding account).
"""

from __future__ import annotations

from collections.abc import Iterable

from eventsourcing.domain import BaseAggregate, event

from domain.base import AggregateCreated, DomainEvent
from domain.campaign import check_template, render
from domain.errors import Gone, InvalidValue
from domain.message import normalise_attachments, normalise_price

MAX_NAME = 200

Attachments = tuple[tuple[str, str], ...]


def script_stream_id(script_id: int) -> str:
    return f"script-{script_id}"


def normalise_script_name(name: object) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not text or len(text) > MAX_NAME or "\x00" in text:
        raise InvalidValue("name", f"must be 1-{MAX_NAME} characters, without NUL")
    return text


class Script(BaseAggregate[str]):
    @staticmethod
    def create_id(script_id: int) -> str:
        return script_stream_id(script_id)

    class Event(DomainEvent):
        pass

    class Created(Event, AggregateCreated):
        script_id: int
        tenant: str
        name: str
        content: str
        price_cents: int
        attachments: Attachments
        # Usable from every account of the workspace its tenant founded; absent from scripts
        # written before workspaces shared them, which decode as False.
        shared: bool = False

    class Updated(Event):
        # The whole script as changed: a reader needs no earlier event to know it.
        name: str
        content: str
        price_cents: int
        attachments: Attachments

    class Deleted(Event):
        pass

    @classmethod
    def write(
        cls,
        *,
        script_id: int,
        tenant: str,
        name: str,
        content: str,
        price_cents: int | None = 0,
        attachments: Iterable[tuple[str, str]] | None = None,
        shared: bool = False,
    ) -> Script:
        return cls(
            script_id=script_id,
            tenant=tenant,
            name=normalise_script_name(name),
            content=check_template(content),
            price_cents=normalise_price(price_cents),
            attachments=normalise_attachments(attachments),
            shared=shared,
        )

    @event(Created)
    def __init__(
        self,
        script_id: int,
        tenant: str,
        name: str,
        content: str,
        price_cents: int,
        attachments: Attachments,
        shared: bool = False,
    ) -> None:
        self.script_id = script_id
        self.tenant = tenant
        self.shared = shared
        self.deleted = False
        self._set(name, content, price_cents, attachments)

    def _set(self, name: str, content: str, price_cents: int, attachments: Attachments) -> None:
        self.name = name
        self.content = content
        self.price_cents = price_cents
        self.attachments = tuple((kind, url) for kind, url in attachments)

    def update(
        self,
        *,
        name: str | None = None,
        content: str | None = None,
        price_cents: int | None = None,
        attachments: Iterable[tuple[str, str]] | None = None,
    ) -> bool:
        """Change what is given; records nothing if nothing changes."""
        self._live()
        new = (
            self.name if name is None else normalise_script_name(name),
            self.content if content is None else check_template(content),
            self.price_cents if price_cents is None else normalise_price(price_cents),
            self.attachments if attachments is None else normalise_attachments(attachments),
        )
        if new == (self.name, self.content, self.price_cents, self.attachments):
            return False
        self._updated(name=new[0], content=new[1], price_cents=new[2], attachments=new[3])
        return True

    @event(Updated)
    def _updated(self, name: str, content: str, price_cents: int, attachments: Attachments) -> None:
        self._set(name, content, price_cents, attachments)

    def delete(self) -> None:
        self._live()
        self._deleted()

    @event(Deleted)
    def _deleted(self) -> None:
        self.deleted = True

    def render_for(self, *, name: str | None, handle: str | None) -> str:
        """The content as one fan reads it."""
        self._live()
        return render(self.content, name=name, handle=handle)

    def _live(self) -> None:
        if self.deleted:
            raise Gone(f"script {self.script_id} was deleted")
