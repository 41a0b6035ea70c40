"""The live stream with real clients over real HTTP: a WebSocket client (``websockets``) and
an SSE client (httpx-sse) against the API served by uvicorn (issue 18)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from adapters.http.app import create_app
from adapters.onlyfans.simulator import Simulator, SimulatorConfig
from adapters.postgres.api_keys import Principal, create_api_key
from adapters.postgres.live_tickets import issue_ticket
from application.permissions import ROLES, Permission, permissions_of
from tests.e2e.test_campaigns import deployment, platform_deployment
from tests.support.campaigns import catch_up_all, free_port, launch, served_api, workers
from tests.support.live import (
    eventually,
    live_socket,
    new_ticket,
    next_update,
    sse_stream,
    take,
    updates_from,
    ws_url,
)
from tests.support.members import account, member

pytestmark = pytest.mark.timeout(90)
MISSED = 100


async def test_a_socket_that_missed_100_updates_gets_exactly_those_after_an_api_restart(
    fresh_database_url: str,
) -> None:
    async with asyncio.timeout(80), deployment(fresh_database_url, port=free_port()) as d:
        base = str(d.http.base_url).rstrip("/")
        async with live_socket(base, d.http, d.auth, types="fan.updated") as socket:
            first = await d.new_fan("First")
            seen = await next_update(socket)
        assert (seen["type"], seen["fanId"], seen["name"]) == ("fan.updated", first, "First")

        missed = [await d.new_fan(f"Fan {n}") for n in range(MISSED)]

        # Another API process (a new app, so a new hub tailing from the head), as after a
        # restart or on another machine; the ticket comes from the first one.
        async with (
            served_api(d.container, free_port()) as other,
            live_socket(
                other, d.http, d.auth, after=seen["position"], types="fan.updated"
            ) as socket,
        ):
            replayed = await updates_from(socket, MISSED)
            assert [u["fanId"] for u in replayed] == missed
            positions = [u["position"] for u in replayed]
            assert positions == sorted(positions)
            assert seen["position"] < positions[0]
            # Then live, with nothing twice: the next update is the next fan.
            last = await d.new_fan("Last")
            following = await next_update(socket)
            assert following["fanId"] == last


async def test_a_stream_says_when_it_is_live_and_lists_read_at_that_position_miss_nothing(
    fresh_database_url: str,
) -> None:
    async with asyncio.timeout(60), deployment(fresh_database_url, port=free_port()) as d:
        base = str(d.http.base_url).rstrip("/")
        before = [await d.new_fan(f"Before {n}") for n in range(3)]
        async with live_socket(base, d.http, d.auth, types="fan.updated") as socket:
            live = json.loads(await socket.recv())
            assert live["type"] == "live", live
            assert live["position"] >= 1
            # As the inbox page loads its lists: at the stream's position (no projector
            # runs here: they catch up first).
            await catch_up_all(d.container)
            listed = await d.http.get(
                "/api/crm/fans", params={"minPosition": live["position"]}, headers=d.auth
            )
            assert listed.status_code == 200, listed.text
            after = await d.new_fan("After")
            streamed = []
            while not streamed or streamed[-1] != after:
                streamed.append((await next_update(socket))["fanId"])
        # Each fan is in the list or, written after the position, on the stream.
        in_list = {fan["id"] for fan in listed.json()["fans"]}
        assert set(before) <= in_list | set(streamed)

        # Resumed at that position: the replay, then ``live`` again, further on.
        async with live_socket(
            base, d.http, d.auth, after=live["position"], types="fan.updated"
        ) as socket:
            replayed = []
            while (update := json.loads(await socket.recv()))["type"] != "live":
                replayed.append(update)
        assert [u["fanId"] for u in replayed] == streamed
        assert update["position"] >= max(u["position"] for u in replayed)


async def test_an_sse_client_resumes_with_last_event_id_without_gap_or_duplicate(
    fresh_database_url: str,
) -> None:
    async with asyncio.timeout(80), deployment(fresh_database_url, port=free_port()) as d:
        async with sse_stream(d.http, d.auth, types="fan.updated") as events:
            first = await d.new_fan("First")
            ((event_id, seen),) = await take(events, 1)
        assert seen["fanId"] == first
        assert event_id == str(seen["position"])

        missed = [await d.new_fan(f"Fan {n}") for n in range(MISSED)]
        resumed = {**d.auth, "Last-Event-ID": event_id}
        async with sse_stream(d.http, resumed, types="fan.updated") as events:
            replayed = await take(events, MISSED)
            assert [u["fanId"] for _, u in replayed] == missed
            assert [i for i, _ in replayed] == [str(u["position"]) for _, u in replayed]
            last = await d.new_fan("Last")
            ((_, following),) = await take(events, 1)
            assert following["fanId"] == last


async def test_a_client_sees_its_own_account_only(fresh_database_url: str) -> None:
    async with asyncio.timeout(60), deployment(fresh_database_url, port=free_port()) as d:
        base = str(d.http.base_url).rstrip("/")
        other_key, _ = await create_api_key(d.container.pool, user_id="user-other", role="creator")
        other = {"Authorization": f"Bearer {other_key}"}
        marker = await d.new_fan("Marker")
        async with (
            live_socket(base, d.http, d.auth) as mine,
            live_socket(base, d.http, other) as theirs,
        ):
            their_fan = await d.http.post("/api/crm/fans", json={"name": "B"}, headers=other)
            their_fan_id = their_fan.json()["fan"]["id"]
            my_fan = await d.new_fan("A")
            # Each sees its own fan first: the other's, written before, never reached it. (A
            # stream goes live from the newest event no open transaction may precede, on a
            # shared server a little before the newest: the marker may come first.)
            assert (await next_update(mine, lambda u: u["fanId"] != marker))["fanId"] == my_fan
            assert (await next_update(theirs))["fanId"] == their_fan_id
            my_next = await d.new_fan("A2")
            assert (await next_update(mine))["fanId"] == my_next
        # A replay from before both holds this account's updates only.
        start = await d.container.pool.fetchval(
            "SELECT min(position) FROM events WHERE stream_id = $1", f"fan-{marker}"
        )
        async with live_socket(base, d.http, d.auth, types="fan.updated", after=start) as socket:
            replayed = await updates_from(socket, 2)
            assert [u["fanId"] for u in replayed] == [my_fan, my_next]


async def test_an_erased_fan_is_erased_on_the_open_stream_and_in_every_replay(
    fresh_database_url: str,
) -> None:
    async with asyncio.timeout(60), deployment(fresh_database_url, port=free_port()) as d:
        base = str(d.http.base_url).rstrip("/")
        marker = await d.new_fan("Marker")
        before = await d.container.pool.fetchval(
            "SELECT max(position) FROM events WHERE stream_id = $1", f"fan-{marker}"
        )
        async with live_socket(base, d.http, d.auth) as socket:
            fan_id = await d.new_fan("Ann")
            created = await next_update(
                socket, lambda u: u["type"] == "fan.updated" and u["fanId"] == fan_id
            )
            assert created["name"] == "Ann"
            sent = await d.http.post(
                "/api/onlyfans/messages/send",
                json={"recipientId": fan_id, "content": "Hello Ann"},
                headers=d.auth,
            )
            assert sent.status_code == 202, sent.text
            queued = await next_update(socket, lambda u: u["type"] == "message.updated")
            assert (queued["status"], queued["content"]) == ("queued", "Hello Ann")
            erased = await d.http.delete(f"/api/crm/fans/{fan_id}?erase=true", headers=d.auth)
            assert erased.status_code == 200, erased.text
            told = await next_update(socket, lambda u: u["type"] == "fan.erased")
            assert told["fanId"] == fan_id

        # Replayed after the erasure, nothing personal is left in what the stream carries.
        async with live_socket(base, d.http, d.auth, after=before) as socket:
            fan = await next_update(socket, lambda u: u["type"] == "fan.updated")
            message = await next_update(socket, lambda u: u["type"] == "message.updated")
            again = await next_update(socket, lambda u: u["type"] == "fan.erased")
        assert (fan["fanId"], fan["name"], fan["handle"]) == (fan_id, None, None)
        assert (message["messageId"], message["content"]) == (queued["messageId"], None)
        assert again["fanId"] == fan_id


async def test_bad_tickets_filters_and_positions_are_refused(fresh_database_url: str) -> None:
    async with asyncio.timeout(60), deployment(fresh_database_url, port=free_port()) as d:
        base = str(d.http.base_url).rstrip("/")
        # No ticket, an unknown one, a used one: the handshake is refused.
        ticket = await new_ticket(d.http, d.auth)
        async with live_socket_with(ws_url(base, ticket=ticket)):
            pass
        for url in (ws_url(base), ws_url(base, ticket="nope"), ws_url(base, ticket=ticket)):
            with pytest.raises(InvalidStatus) as refused:
                async with live_socket_with(url):
                    pass
            assert refused.value.response.status_code == 403

        # A bad filter closes the socket with 4400 and says why.
        ticket = await new_ticket(d.http, d.auth)
        with pytest.raises((InvalidStatus, ConnectionClosed)):
            async with live_socket_with(ws_url(base, ticket=ticket, types="fan.nothing")) as s:
                await s.recv()

        # SSE: problem+json for each.
        for headers, params, status in (
            ({}, {}, 401),
            ({"Authorization": "Bearer nope"}, {}, 401),
            ({}, {"ticket": "nope"}, 401),
            (d.auth, {"after": "-1"}, 400),
            (d.auth, {"after": "1e9"}, 400),
            (d.auth, {"types": "message.sent"}, 400),
            (d.auth, {"conversationId": "x"}, 400),
        ):
            response = await d.http.get("/api/live/events", headers=headers, params=params)
            assert response.status_code == status, (headers, params, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")

        # A position no event holds: a resync, then the stream ends.
        async with sse_stream(d.http, d.auth, after=10**12) as events:
            ((_, update),) = await take(events, 1)
        assert update["type"] == "resync"

        # The key never goes in a URL: a ticket does, and it is spent after one use.
        ticket = await new_ticket(d.http, d.auth)
        async with sse_stream(d.http, {}, ticket=ticket, types="fan.updated") as events:
            fan_id = await d.new_fan("Via ticket")
            ((_, update),) = await take(events, 1)
        assert update["fanId"] == fan_id
        again = await d.http.get("/api/live/events", params={"ticket": ticket})
        assert again.status_code == 401


def live_socket_with(url: str) -> connect:
    return connect(url)


async def test_every_role_may_open_the_stream_and_unknown_keys_may_not(
    fresh_database_url: str,
) -> None:
    async with asyncio.timeout(60), deployment(fresh_database_url, port=free_port()) as d:
        for role in ROLES:
            key, _ = await create_api_key(d.container.pool, user_id=d.tenant, role=role)
            headers = {"Authorization": f"Bearer {key}"}
            ticket = await d.http.post("/api/live/tickets", headers=headers)
            if Permission.READ not in permissions_of(role):
                assert ticket.status_code == 403, role
                refused = await d.http.get("/api/live/events", headers=headers)
                assert refused.status_code == 403, role
                continue
            assert ticket.status_code == 201, role
            async with sse_stream(d.http, headers, after=10**12) as events:
                ((_, update),) = await take(events, 1)
            assert update["type"] == "resync", role


@pytest.mark.timeout(60)
async def test_a_send_goes_queued_sent_read_live_and_the_fans_reply_arrives(
    fresh_database_url: str,
) -> None:
    async with (
        asyncio.timeout(50),
        platform_deployment(
            fresh_database_url,
            read_probability=1.0,
            reply_probability=1.0,
            webhook_delay=0.05,
            webhook_delay_jitter=0.0,
        ) as (_, d),
    ):
        base = str(d.http.base_url).rstrip("/")
        fan_id = await d.new_fan("Ann")
        await catch_up_all(d.container)
        async with workers(d.container), live_socket(base, d.http, d.auth) as socket:
            sent = await d.http.post(
                "/api/onlyfans/messages/send",
                json={"recipientId": fan_id, "content": "Hello Ann", "priceCents": 500},
                headers=d.auth,
            )
            assert sent.status_code == 202, sent.text
            message_id = sent.json()["messageId"]

            statuses = []
            while "read" not in statuses:
                update = await next_update(
                    socket,
                    lambda u: u["type"] == "message.updated" and u["messageId"] == message_id,
                )
                statuses.append(update["status"])
                assert (update["fanId"], update["priceCents"]) == (fan_id, 500)
            # The relay records "dispatched" only while the message is still queued: a sender
            # quicker than the relay's append leaves it out.
            assert statuses in (
                ["queued", "dispatched", "sent", "read"],
                ["queued", "sent", "read"],
            )

            reply = await next_update(socket, lambda u: u["type"] == "message.received")
            assert (reply["fanId"], reply["conversationId"]) == (fan_id, update["conversationId"])
            assert reply["content"]
            conversation = await next_update(socket, lambda u: u["type"] == "conversation.updated")
            assert conversation["conversationId"] == reply["conversationId"]
            assert conversation["unreadCount"] == 1


async def test_a_member_limited_to_one_account_streams_that_account_only(
    fresh_database_url: str,
) -> None:
    async with asyncio.timeout(60), deployment(fresh_database_url, port=free_port()) as d:
        base = str(d.http.base_url).rstrip("/")
        second = await account(d.http, d.auth)
        _, chatter = await member(d.http, d.auth, "chatter", [second])
        # The ticket is for an account the member may act on, or none.
        refused = await d.http.post(
            "/api/live/tickets", headers={**chatter, "X-Account-Id": d.tenant}
        )
        assert refused.status_code == 404
        async with live_socket(base, d.http, chatter, types="fan.updated") as socket:
            await d.new_fan("In the founding account")
            created = await d.http.post(
                "/api/crm/fans",
                json={"name": "In the second account"},
                headers={**d.auth, "X-Account-Id": second},
            )
            assert created.status_code == 201, created.text
            update = await next_update(socket)
        assert update["fanId"] == created.json()["fan"]["id"]
        assert update["name"] == "In the second account"


@pytest.mark.timeout(60)
async def test_a_running_campaign_reports_its_progress_until_every_message_is_sent(
    fresh_database_url: str,
) -> None:
    async with (
        asyncio.timeout(50),
        Simulator(SimulatorConfig()) as platform,
        deployment(
            fresh_database_url,
            port=free_port(),
            onlyfans_api_url=platform.url,
            rate_limiter_enabled=False,
        ) as d,
    ):
        base = str(d.http.base_url).rstrip("/")
        fans = [await d.new_fan(name) for name in ("Ann", "Bea", "Cy")]
        await catch_up_all(d.container)
        async with (
            workers(d.container),
            live_socket(base, d.http, d.auth) as socket,
        ):
            accepted = await launch(d.http, d.auth, recipientIds=fans, content="A new set!")
            campaign_id = accepted["campaignId"]
            # Its messages carry the campaign's id...
            queued = await next_update(
                socket, lambda u: u["type"] == "message.updated" and u["status"] == "queued"
            )
            assert queued["campaignId"] == campaign_id
            # ...and its progress comes as a summary, until the last figures.
            progress: dict[str, object] = {}
            while progress.get("sent") != len(fans):
                progress = json.loads(await socket.recv())
                if progress["type"] != "campaign.progress":
                    continue
                assert progress["campaignId"] == campaign_id
                assert progress["position"] is None
            assert progress["totalRecipients"] == len(fans)


async def test_quiet_streams_get_heartbeats_and_clients_that_leave_stop_costing(
    fresh_database_url: str,
) -> None:
    async with asyncio.timeout(60), deployment(fresh_database_url) as d:
        app = create_app(container=d.container)
        hub = app.state.live_hub
        hub.heartbeat_seconds = 0.2
        async with (
            served_api(d.container, free_port(), app) as base,
            httpx.AsyncClient(base_url=base) as http,
        ):
            ticket = await new_ticket(http, d.auth)
            async with connect(ws_url(base, ticket=ticket)) as socket:
                while json.loads(await socket.recv())["type"] != "heartbeat":
                    pass
                async with aconnect_sse(
                    http, "GET", "/api/live/events", headers=d.auth, timeout=None
                ) as source:
                    lines = source.response.aiter_lines()
                    while await anext(lines) != ": heartbeat":
                        pass
                    assert hub.clients == 2
                await eventually(lambda: hub.clients == 1)
            await eventually(lambda: hub.clients == 0)


async def test_a_member_removed_while_streaming_loses_the_stream(
    fresh_database_url: str,
) -> None:
    async with asyncio.timeout(60), deployment(fresh_database_url, port=free_port()) as d:
        base = str(d.http.base_url).rstrip("/")
        member_id, chatter = await member(d.http, d.auth, "chatter")
        async with live_socket(base, d.http, chatter) as socket:
            removed = await d.http.delete(f"/api/workspace/members/{member_id}", headers=d.auth)
            assert removed.status_code == 200, removed.text
            update = await next_update(socket, lambda u: u["type"] == "revoked")
            with pytest.raises(ConnectionClosed) as closed:
                await socket.recv()
        assert update["reason"]
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403


async def test_a_ticket_without_the_read_permission_opens_no_stream(
    fresh_database_url: str,
) -> None:
    async with asyncio.timeout(60), deployment(fresh_database_url, port=free_port()) as d:
        base = str(d.http.base_url).rstrip("/")
        # Such a ticket cannot be had over HTTP (the ticket route needs crm:read too): one is
        # issued directly, to show the stream's own check.
        sender_only = Principal(
            key_id="k",
            user_id=d.tenant,
            role="sender",
            workspace_id=d.tenant,
            member_id="member-x",
            permissions=frozenset({Permission.SEND}),
        )
        ticket = await issue_ticket(d.container.pool, sender_only)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(base, ticket=ticket)):
                pass
        assert refused.value.response.status_code == 403
        ticket = await issue_ticket(d.container.pool, sender_only)
        answer = await d.http.get("/api/live/events", params={"ticket": ticket})
        assert answer.status_code == 403
        assert answer.headers["content-type"].startswith("application/problem+json")
