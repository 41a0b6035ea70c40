"""Patreon API v2 over HTTP: a campaign's members, a page at a time (docs.patreon.com,
"APIv2: Resource Endpoints", GET /api/oauth2/v2/campaigns/{campaign_id}/members).

Authenticated with the creator's access token as a Bearer token. What goes wrong is raised as
PlatformCallFailed with a reason in plain words, never the token: the reason is stored as the
connection's health and shown to the creator. A 429 or a 5xx is tried again a few times
(Retry-After honoured, capped) before the sync gives up; it then resumes from its checkpoint.
"""

from __future__ import annotations

import asyncio

import httpx
import msgspec

from adapters.patreon.jsonapi import MEMBER_FIELDS, decode_page
from application.patreon import MembersPage, PlatformCallFailed

MEMBERS_PATH = "/api/oauth2/v2/campaigns/{campaign_id}/members"
DEFAULT_PAGE_SIZE = 500  # Patreon's documented page[count] maximum is 1000
ATTEMPTS = 3
BACKOFF = 0.2  # seconds before the 2nd try, doubling
MAX_RETRY_AFTER = 30.0


class PatreonClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        campaign_id: str,
        access_token: str,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self._http = http
        self._url = base_url.rstrip("/") + MEMBERS_PATH.format(campaign_id=campaign_id)
        self._headers = {"Authorization": f"Bearer {access_token}", "User-Agent": "fancrm"}
        self._page_size = page_size

    async def members_page(self, cursor: str | None) -> MembersPage:
        params = {
            "include": "currently_entitled_tiers,user",
            "fields[member]": MEMBER_FIELDS,
            "fields[tier]": "title",
            "page[count]": str(self._page_size),
        }
        if cursor is not None:
            params["page[cursor]"] = cursor
        for attempt in range(ATTEMPTS):
            try:
                return await self._get(params)
            except PlatformCallFailed as failure:
                if failure.retry_after is None or attempt + 1 == ATTEMPTS:
                    raise
                await asyncio.sleep(min(failure.retry_after, MAX_RETRY_AFTER))
        raise AssertionError("unreachable")

    async def _get(self, params: dict[str, str]) -> MembersPage:
        backoff = BACKOFF
        try:
            response = await self._http.get(self._url, params=params, headers=self._headers)
        except httpx.HTTPError as error:
            raise PlatformCallFailed(
                f"Patreon did not answer ({type(error).__name__})", retry_after=backoff
            ) from None
        status = response.status_code
        if status in (401, 403):
            raise PlatformCallFailed(f"Patreon refused the access token (HTTP {status})")
        if status == 404:
            raise PlatformCallFailed("Patreon knows no such campaign (HTTP 404)")
        if status == 429 or status >= 500:
            raise PlatformCallFailed(
                f"Patreon answered HTTP {status}", retry_after=_retry_after(response, backoff)
            )
        if status != 200:
            raise PlatformCallFailed(f"Patreon answered HTTP {status}")
        try:
            return decode_page(response.content)
        except msgspec.DecodeError:
            raise PlatformCallFailed("Patreon's answer is not a members page") from None


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return default
