"""Shifts over HTTP: a manager schedules and cancels a member's shifts, everyone of the
workspace lists them (by member and window, a page at a time), one member's shifts never
overlap, bad windows and scopes are refused, and no other workspace sees or cancels them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from adapters import bootstrap
from tests.support.members import account, invite, is_problem, member

SHIFTS = "/api/workspace/shifts"
DAY = datetime(2026, 3, 2, tzinfo=UTC)


def _at(hours: float) -> str:
    return (DAY + timedelta(hours=hours)).isoformat()


async def _schedule(
    http: httpx.AsyncClient, headers: dict[str, str], member_id: str, start: float, end: float,
    **more: Any,
) -> httpx.Response:  # fmt: skip
    body = {"memberId": member_id, "startsAt": _at(start), "endsAt": _at(end), **more}
    return await http.post(SHIFTS, json=body, headers=headers)


async def _listed(
    http: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    answer = await http.get(SHIFTS, params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["shifts"])


async def test_a_manager_schedules_and_cancels_and_the_workspace_lists_them(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    tenant: str,
    catch_up: Callable[[], Awaitable[int]],
) -> None:
    manager_id, manager = await member(http, auth, "manager")
    ann, ann_key = await member(http, auth, "chatter", [tenant])
    bob, _ = await member(http, auth, "chatter")

    made = await _schedule(http, manager, ann, 8, 16)
    assert made.status_code == 201, made.text
    shift = made.json()
    assert set(shift) == {"shiftId", "memberId", "startsAt", "endsAt", "accounts", "position"}
    assert (shift["memberId"], shift["accounts"]) == (ann, [tenant])  # the member's own scope
    assert datetime.fromisoformat(shift["startsAt"]) == DAY + timedelta(hours=8)
    # Another zone on the wire, the same instant, kept in UTC.
    paris = (DAY + timedelta(hours=17)).astimezone(ZoneInfo("Europe/Paris")).isoformat()
    evening = await http.post(
        SHIFTS,
        json={"memberId": bob, "startsAt": paris, "endsAt": _at(23), "accounts": "all"},
        headers=auth,
    )
    assert evening.status_code == 201, evening.text
    assert evening.json()["startsAt"] == _at(17).replace("+00:00", "Z")
    assert evening.json()["accounts"] == "all"
    night = await _schedule(http, manager, ann, 24, 30)
    assert night.status_code == 201, night.text

    await catch_up()
    everything = await _listed(http, ann_key)  # a chatter reads the shifts
    assert [s["shiftId"] for s in everything] == [
        shift["shiftId"], evening.json()["shiftId"], night.json()["shiftId"]
    ]  # fmt: skip
    assert everything[0]["scheduledBy"] == f"member:{manager_id}"
    assert [s["memberId"] for s in await _listed(http, manager, memberId=ann)] == [ann, ann]
    # Overlapping a window: the 08-16 shift overlaps 15:00-18:00, the 17-23 one too.
    window = await _listed(http, manager, **{"from": _at(15), "to": _at(18)})
    assert [s["memberId"] for s in window] == [ann, bob]
    assert await _listed(http, manager, **{"from": _at(30), "to": _at(40)}) == []
    page = await http.get(SHIFTS, params={"limit": 2}, headers=manager)
    assert len(page.json()["shifts"]) == 2
    rest = await http.get(
        SHIFTS, params={"limit": 2, "cursor": page.json()["nextCursor"]}, headers=manager
    )
    assert [s["shiftId"] for s in rest.json()["shifts"]] == [night.json()["shiftId"]]
    assert rest.json()["nextCursor"] is None

    cancelled = await http.delete(f"{SHIFTS}/{shift['shiftId']}", headers=manager)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["cancelled"] is True
    await catch_up()
    assert [s["memberId"] for s in await _listed(http, manager, memberId=ann)] == [ann]
    assert is_problem(await http.delete(f"{SHIFTS}/{shift['shiftId']}", headers=manager), 404)
    # Its hours are free again.
    assert (await _schedule(http, manager, ann, 9, 12)).status_code == 201


async def test_one_members_shifts_never_overlap(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    ann, _ = await member(http, auth, "chatter")
    bob, _ = await member(http, auth, "chatter")
    assert (await _schedule(http, auth, ann, 8, 16)).status_code == 201
    for start, end in ((15, 20), (0, 9), (10, 11), (8, 16), (4, 20)):
        assert is_problem(await _schedule(http, auth, ann, start, end), 409), (start, end)
    # Back to back is no overlap; another member may work the same hours.
    assert (await _schedule(http, auth, ann, 16, 20)).status_code == 201
    assert (await _schedule(http, auth, bob, 8, 16)).status_code == 201


async def test_bad_input_is_refused_naming_the_field(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    tenant: str,
    catch_up: Callable[[], Awaitable[int]],
) -> None:
    ann, _ = await member(http, auth, "chatter", [tenant])
    removed, _ = await member(http, auth, "chatter")
    await http.delete(f"/api/workspace/members/{removed}", headers=auth)
    invited = (await invite(http, auth, "chatter"))["memberId"]
    other = await account(http, auth)

    assert is_problem(await _schedule(http, auth, ann, 10, 9), 422, "endsAt")
    assert is_problem(await _schedule(http, auth, ann, 10, 10), 422, "endsAt")
    assert is_problem(await _schedule(http, auth, ann, 0, 24.5), 422, "endsAt")
    naive = {"memberId": ann, "startsAt": "2026-03-02T08:00:00", "endsAt": _at(9)}
    assert is_problem(await http.post(SHIFTS, json=naive, headers=auth), 422, "startsAt")
    garbled = {"memberId": ann, "startsAt": "tomorrow", "endsAt": _at(9)}
    assert is_problem(await http.post(SHIFTS, json=garbled, headers=auth), 400)
    for nobody in (removed, "no-such-member"):
        assert is_problem(await _schedule(http, auth, nobody, 1, 2), 422, "memberId")
    # Beyond the member's scope, or outside the workspace.
    assert is_problem(await _schedule(http, auth, ann, 1, 2, accounts=[other]), 422, "accounts")
    assert is_problem(await _schedule(http, auth, ann, 1, 2, accounts="all"), 422, "accounts")
    assert is_problem(await _schedule(http, auth, ann, 1, 2, accounts=["nope"]), 422, "accounts")
    assert is_problem(await _schedule(http, auth, ann, 1, 2, accounts=[]), 422, "accounts")
    assert is_problem(
        await http.get(SHIFTS, params={"from": _at(5), "to": _at(1)}, headers=auth), 422, "to"
    )
    assert is_problem(
        await http.get(SHIFTS, params={"from": "2026-03-02T08:00:00"}, headers=auth), 422, "from"
    )
    await catch_up()  # a cursor is read once the view has the key's writes
    assert is_problem(
        await http.get(SHIFTS, params={"cursor": "nonsense"}, headers=auth), 422, "cursor"
    )
    # An invited member, not yet joined, has shifts too.
    assert (await _schedule(http, auth, invited, 1, 2)).status_code == 201


async def test_a_chatter_may_not_schedule_or_cancel(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    ann, chatter = await member(http, auth, "chatter")
    assert is_problem(await _schedule(http, chatter, ann, 8, 9), 403)
    made = await _schedule(http, auth, ann, 8, 9)
    assert is_problem(await http.delete(f"{SHIFTS}/{made.json()['shiftId']}", headers=chatter), 403)


async def test_a_manager_of_some_accounts_schedules_within_them_only(
    http: httpx.AsyncClient, auth: dict[str, str], tenant: str,
    catch_up: Callable[[], Awaitable[int]],
) -> None:  # fmt: skip
    other = await account(http, auth)
    _, manager = await member(http, auth, "manager", [tenant])
    everywhere, _ = await member(http, auth, "chatter")
    elsewhere, _ = await member(http, auth, "chatter", [other])
    assert is_problem(await _schedule(http, manager, everywhere, 8, 9), 403)  # "all" by default
    assert (await _schedule(http, manager, everywhere, 8, 9, accounts=[tenant])).status_code == 201
    theirs = await _schedule(http, auth, elsewhere, 8, 9)
    await catch_up()
    # It sees the shifts on its accounts only, and cannot cancel one it does not see.
    assert [s["memberId"] for s in await _listed(http, manager)] == [everywhere]
    assert is_problem(
        await http.delete(f"{SHIFTS}/{theirs.json()['shiftId']}", headers=manager), 404
    )


async def test_another_workspace_neither_sees_nor_cancels_a_shift(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    other_auth: dict[str, str],
    catch_up: Callable[[], Awaitable[int]],
) -> None:
    ann, _ = await member(http, auth, "chatter")
    made = await _schedule(http, auth, ann, 8, 9)
    shift_id = made.json()["shiftId"]
    # Their own member id space: naming ours schedules nothing.
    assert is_problem(await _schedule(http, other_auth, ann, 10, 11), 422, "memberId")
    await catch_up()
    assert await _listed(http, other_auth) == []
    assert await _listed(http, other_auth, memberId=ann) == []
    assert is_problem(await http.delete(f"{SHIFTS}/{shift_id}", headers=other_auth), 404)
    assert is_problem(await http.delete(f"{SHIFTS}/not-a-uuid", headers=auth), 404)
    assert [s["shiftId"] for s in await _listed(http, auth)] == [shift_id]


async def test_a_retry_with_its_idempotency_key_schedules_once(
    container: bootstrap.Container, http: httpx.AsyncClient, auth: dict[str, str], tenant: str,
    catch_up: Callable[[], Awaitable[int]],
) -> None:  # fmt: skip
    ann, _ = await member(http, auth, "chatter")
    headers = {**auth, "Idempotency-Key": "monday-morning"}
    first = await _schedule(http, headers, ann, 8, 12)
    again = await _schedule(http, headers, ann, 8, 12)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    # The key decided the id too: the shift the lead's unanswered-messages query will find.
    await catch_up()
    found = await container.workspaces.shift(tenant, first.json()["shiftId"])
    assert found is not None
    assert (found.member_id, found.accounts) == (ann, None)
    assert found.ends_at - found.starts_at == timedelta(hours=4)
    assert await container.workspaces.shift("someone-else", first.json()["shiftId"]) is None
