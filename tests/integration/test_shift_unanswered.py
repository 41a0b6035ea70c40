"""GET /api/workspace/shifts/{shiftId}/unanswered: the fans' messages a shift left waiting,
on the shift's accounts, as the analytics_members view has them once caught up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx

from adapters import bootstrap
from projections.analytics_members import MemberAnalyticsProjection
from tests.support.catching_up import catch_up_to_head
from tests.support.members import account, is_problem, member
from tests.support.message_log import Log

SHIFTS = "/api/workspace/shifts"
NINE = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)


def _at(hours: float) -> datetime:
    return NINE + timedelta(hours=hours)


async def _catch_up_all(
    container: bootstrap.Container, catch_up: Callable[[], Awaitable[int]]
) -> None:
    """The core views (the fixture), then the member analytics: the fixture's projectors
    leave the analytics ones to the worker."""
    await catch_up()
    await catch_up_to_head(container, [MemberAnalyticsProjection()])


async def test_a_shift_lists_what_fans_wrote_during_it_and_nobody_answered_by_its_end(
    container: bootstrap.Container,
    http: httpx.AsyncClient,
    auth: dict[str, str],
    other_auth: dict[str, str],
    tenant: str,
    catch_up: Callable[[], Awaitable[int]],
) -> None:
    other = await account(http, auth)
    ann, ann_key = await member(http, auth, "chatter", [tenant])
    _, elsewhere = await member(http, auth, "chatter", [other])
    body = {"memberId": ann, "startsAt": _at(1).isoformat(), "endsAt": _at(9).isoformat()}
    made = await http.post(SHIFTS, json=body, headers=auth)  # 10:00 to 18:00, on the tenant
    assert made.status_code == 201, made.text
    shift_id = made.json()["shiftId"]

    log = Log(container, tenant)
    await log.fan_wrote(1, _at(1.5))
    await log.sent(ann, 1, _at(2))  # answered during the shift: not listed
    late = await log.fan_wrote(2, _at(3))
    await log.sent(ann, 2, _at(10))  # answered after the shift ended: listed, with when
    waiting = await log.fan_wrote(3, _at(4))  # never answered: listed
    await log.fan_wrote(4, _at(0.5))  # before the shift: not listed
    await Log(container, other).fan_wrote(5, _at(3.5))  # an account the shift does not cover
    await _catch_up_all(container, catch_up)

    answer = await http.get(f"{SHIFTS}/{shift_id}/unanswered", headers=ann_key)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert (found["shiftId"], found["memberId"], found["truncated"]) == (shift_id, ann, False)
    assert datetime.fromisoformat(found["startsAt"]) == _at(1)
    assert datetime.fromisoformat(found["endsAt"]) == _at(9)
    assert [m["messageId"] for m in found["messages"]] == [late, waiting]
    first, second = found["messages"]
    assert set(first) == {
        "accountId", "messageId", "conversationId", "fanId", "receivedAt", "answeredAt",
        "answeredBy",
    }  # fmt: skip
    assert (first["accountId"], first["conversationId"], first["fanId"]) == (tenant, 2, 2)
    assert datetime.fromisoformat(first["receivedAt"]) == _at(3)
    assert datetime.fromisoformat(first["answeredAt"]) == _at(10)
    assert first["answeredBy"] == ann
    assert (second["answeredAt"], second["answeredBy"]) == (None, None)

    one = await http.get(f"{SHIFTS}/{shift_id}/unanswered", params={"limit": 1}, headers=auth)
    assert [m["messageId"] for m in one.json()["messages"]] == [late]
    assert one.json()["truncated"] is True
    # Scoped as the list is: a member of other accounts, or another workspace, finds nothing.
    for headers in (elsewhere, other_auth):
        assert is_problem(await http.get(f"{SHIFTS}/{shift_id}/unanswered", headers=headers), 404)
    for bad in ("not-a-shift", shift_id.upper(), f"{shift_id}0", f"{ann}.{'0' * 32}"):
        assert is_problem(await http.get(f"{SHIFTS}/{bad}/unanswered", headers=auth), 404), bad
    assert is_problem(
        await http.get(f"{SHIFTS}/{shift_id}/unanswered", params={"limit": 501}, headers=auth),
        400,
    )


async def test_a_shift_on_every_account_reads_every_account_the_caller_may(
    container: bootstrap.Container,
    http: httpx.AsyncClient,
    auth: dict[str, str],
    tenant: str,
    catch_up: Callable[[], Awaitable[int]],
) -> None:
    other = await account(http, auth)
    bob, _ = await member(http, auth, "chatter")
    _, restricted = await member(http, auth, "chatter", [other])
    body = {"memberId": bob, "startsAt": _at(1).isoformat(), "endsAt": _at(9).isoformat()}
    made = await http.post(SHIFTS, json=body, headers=auth)
    assert made.status_code == 201, made.text
    assert made.json()["accounts"] == "all"
    here = await Log(container, tenant).fan_wrote(1, _at(2))
    there = await Log(container, other).fan_wrote(2, _at(3))
    await _catch_up_all(container, catch_up)

    path = f"{SHIFTS}/{made.json()['shiftId']}/unanswered"
    everything = (await http.get(path, headers=auth)).json()["messages"]
    assert [m["messageId"] for m in everything] == [here, there]
    # A member of one account sees the shift (it touches its account), and only its fans.
    mine = await http.get(path, headers=restricted)
    assert mine.status_code == 200, mine.text
    assert [m["messageId"] for m in mine.json()["messages"]] == [there]
