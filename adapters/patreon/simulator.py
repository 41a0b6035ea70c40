"""A Patreon API v2 simulator over real HTTP: a campaign's members, cursor-paginated in
JSON:API's shape, and signed webhooks posted to a receiver.

    GET /api/oauth2/v2/campaigns/{campaign_id}/members
        ?include=currently_entitled_tiers,user&page[count]=N&page[cursor]=C
    Authorization: Bearer <access token>

Members are made up from their number (``member(i)``), so any count costs nothing until it
is served; ``change(i, ...)`` edits one, as a patron changing their pledge would. Failure
injection: from the ``fail_from_page``-th page request on (counting from 1), the next
``fail_times`` page requests answer 500, which interrupts a sync mid-way. Webhooks: ``post_
webhook`` sends one member document, as Patreon does, with X-Patreon-Event and X-Patreon-
Signature (HMAC-MD5 of the raw body with the webhook's secret).
"""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
from litestar import Litestar, Request, Response, get
from litestar.params import FromPath

from adapters.onlyfans.server import BackgroundServer
from adapters.patreon.client import MEMBERS_PATH
from adapters.patreon.signing import EVENT_HEADER, SIGNATURE_HEADER, sign

TIERS = (("t-bronze", "Bronze"), ("t-silver", "Silver"), ("t-gold", "Gold ($25)"))
STATUSES = ("active_patron", "active_patron", "declined_patron", "former_patron")
MAX_PAGE = 1000
_IDS = uuid.UUID("6a1c0c52-3f0e-4c1b-9d7e-2b5b9d0f4e11")
_EPOCH = datetime(2021, 1, 1, tzinfo=UTC)


class PatreonSimulatorConfig(msgspec.Struct, kw_only=True):
    campaign_id: str = "1000"
    access_token: str = "patreon-dev-token"  # noqa: S105 - the simulator's, not a secret
    members: int = 250
    page_size: int = 100  # when the request names no page[count]
    fail_from_page: int | None = None
    fail_times: int = 1_000_000


class PatreonSimulatorState:
    def __init__(self, config: PatreonSimulatorConfig) -> None:
        self.config = config
        self._changes: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.page_requests = 0
        self.failures = 0

    def fail(self, *, from_page: int | None, times: int = 1_000_000) -> None:
        """From the ``from_page``-th page request on, ``times`` answers are 500 (None: none)."""
        with self._lock:
            self.config.fail_from_page, self.config.fail_times = from_page, times
            self.failures = 0

    def change(self, index: int, **attributes: Any) -> None:
        with self._lock:
            self._changes.setdefault(index, {}).update(attributes)

    def member(self, index: int) -> dict[str, Any]:
        """Member ``index`` (0-based) as a JSON:API resource, its tier and user as refs."""
        tier_id, _ = TIERS[index % len(TIERS)]
        attributes: dict[str, Any] = {
            "full_name": f"Patron {index}",
            "email": f"patron{index}@example.com",
            "patron_status": STATUSES[index % len(STATUSES)],
            "pledge_relationship_start": (_EPOCH + timedelta(days=index % 900)).isoformat(),
            "lifetime_support_cents": 500 * (1 + index % 40),
            "currently_entitled_amount_cents": 500 * (1 + index % len(TIERS)),
            "last_charge_status": "Paid",
        }
        with self._lock:
            attributes |= self._changes.get(index, {})
        return {
            "id": str(uuid.uuid5(_IDS, str(index))),
            "type": "member",
            "attributes": attributes,
            "relationships": {
                "currently_entitled_tiers": {"data": [{"id": tier_id, "type": "tier"}]},
                "user": {"data": {"id": self.user_id(index), "type": "user"}},
            },
        }

    @staticmethod
    def user_id(index: int) -> str:
        return str(700_000 + index)

    def document(self, index: int) -> bytes:
        """Member ``index`` as a webhook's body."""
        return msgspec.json.encode({"data": self.member(index), "included": _included()})

    def page(self, token: str | None, cursor: str | None, count: int | None) -> tuple[int, bytes]:
        if token != self.config.access_token:
            return 401, msgspec.json.encode({"errors": [{"code_name": "Unauthorized"}]})
        with self._lock:
            self.page_requests += 1
            start = self.config.fail_from_page
            failing = start is not None and self.page_requests >= start
            if failing and self.failures < self.config.fail_times:
                self.failures += 1
                return 500, msgspec.json.encode({"errors": [{"code_name": "Internal"}]})
        offset = _offset(cursor)
        if offset is None:
            return 400, msgspec.json.encode({"errors": [{"code_name": "BadCursor"}]})
        size = max(1, min(count or self.config.page_size, MAX_PAGE))
        end = min(offset + size, self.config.members)
        following = _cursor(end) if end < self.config.members else None
        body = {
            "data": [self.member(i) for i in range(offset, end)],
            "included": _included(),
            "links": {"next": f"?page%5Bcursor%5D={following}"} if following else {},
            "meta": {"pagination": {"cursors": {"next": following}, "total": self.config.members}},
        }
        return 200, msgspec.json.encode(body)


def _included() -> list[dict[str, Any]]:
    return [{"id": tid, "type": "tier", "attributes": {"title": title}} for tid, title in TIERS]


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int | None:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        kind, _, number = text.partition(":")
        return int(number) if kind == "offset" and int(number) >= 0 else None
    except ValueError:
        return None


def create_patreon_app(state: PatreonSimulatorState) -> Litestar:
    @get(MEMBERS_PATH.replace("{campaign_id}", "{campaign_id:str}"))
    async def members(
        request: Request[Any, Any, Any], campaign_id: FromPath[str]
    ) -> Response[bytes]:
        if campaign_id != state.config.campaign_id:
            return Response(b'{"errors":[{"code_name":"NotFound"}]}', status_code=404)
        auth = request.headers.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        count = request.query_params.get("page[count]")
        status, body = state.page(
            token,
            request.query_params.get("page[cursor]"),
            int(count) if count and count.isdigit() else None,
        )
        return Response(body, status_code=status, media_type="application/vnd.api+json")

    return Litestar(route_handlers=[members], logging_config=None, openapi_config=None)


class PatreonSimulator:
    """The simulator on 127.0.0.1, a free port by default, served from a thread of its own."""

    def __init__(
        self,
        config: PatreonSimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.state = PatreonSimulatorState(config or PatreonSimulatorConfig())
        self._server = BackgroundServer(create_patreon_app(self.state), host=host, port=port)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> PatreonSimulator:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    async def __aenter__(self) -> PatreonSimulator:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    async def post_webhook(
        self, url: str, trigger: str, index: int, secret: str, *, body: bytes | None = None
    ) -> httpx.Response:
        """Post member ``index`` (or ``body``) to ``url`` as Patreon would, signed."""
        raw = body if body is not None else self.state.document(index)
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: trigger,
            SIGNATURE_HEADER: sign(secret, raw),
        }
        async with httpx.AsyncClient(timeout=10.0) as http:
            return await http.post(url, content=raw, headers=headers)
