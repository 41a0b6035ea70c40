"""The churn activity view (projections/churn_activity.py) and the features read from it: no
event from day D on changes a feature as of D; labels, reply latency, reads, imported history
and erasure as the rules say."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import bootstrap
from adapters.postgres.churn_store import activity_as_of
from application.churn import features
from projections.churn_activity import ChurnActivityProjection
from tests.support.catching_up import catch_up_to_head
from tests.support.churn_history import History

pytestmark = pytest.mark.timeout(120)
D = date(2026, 3, 1)
START = datetime(2026, 1, 1, tzinfo=UTC)
CUT = datetime(2026, 3, 1, tzinfo=UTC)
KINDS = ("wrote", "sent", "campaign", "read", "bought", "imported", "deleted")


def at(day: int, hour: int = 12) -> datetime:
    return START + timedelta(days=day, hours=hour)


def fan_ids() -> list[int]:
    # Not from `random`: hypothesis seeds it alike for every example.
    base = 10**9 + uuid.uuid4().int % 10**12
    return [base + i for i in range(4)]


async def as_of(container: bootstrap.Container, tenant: str, day: date, *, label: bool = False):
    await catch_up_to_head(container, [ChurnActivityProjection()])
    async with container.pool.acquire() as conn:
        return {fan.fan_id: fan for fan in await activity_as_of(conn, tenant, day, label=label)}


def play(
    history: History, ids: list[int], plan: list[tuple[str, int, int]], base: datetime
) -> None:
    """Each step (kind, which fan, minutes after ``base``)."""
    for kind, which, minutes in plan:
        fan_id, when = ids[which], base + timedelta(minutes=minutes)
        if kind == "wrote":
            history.fan_wrote(fan_id, when)
        elif kind == "sent":
            history.sent(fan_id, when)
        elif kind == "campaign":
            history.sent(fan_id, when, campaign=7)
        elif kind == "read":
            history.read(history.sent(fan_id, when), when + timedelta(minutes=1))
        elif kind == "bought":
            history.bought(fan_id, when, 500)
        elif kind == "imported":
            history.imported(fan_id, when, when, 700)
        elif kind == "deleted" and not history.fans[fan_id].deleted:
            history.deleted(fan_id, when)


# Minutes: often within the first two days, where a day boundary off by one would show.
minutes = st.one_of(st.integers(0, 60 * 24 * 2), st.integers(0, 60 * 24 * 80))
steps = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 2), minutes), max_size=25)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(before=steps, after=steps)
async def test_a_feature_as_of_a_day_is_the_same_whatever_the_log_holds_after_it(
    container: bootstrap.Container,
    before: list[tuple[str, int, int]],
    after: list[tuple[str, int, int]],
) -> None:
    """Two tenants with the same history up to D; the second's log goes on with arbitrary
    events dated D or later (an erasure aside: it must remove the fan)."""
    ended, went_on = History(container, uuid.uuid4().hex), History(container, uuid.uuid4().hex)
    ids = {ended.tenant: fan_ids()[:3], went_on.tenant: fan_ids()[:3]}
    early = sorted(before, key=lambda step: step[2])
    for history in (ended, went_on):
        for fan_id in ids[history.tenant]:
            history.fan(fan_id, at(0))
        play(history, ids[history.tenant], [s for s in early if s[2] < 59 * 24 * 60], START)
    play(went_on, ids[went_on.tenant], sorted(after, key=lambda step: step[2]), CUT)
    await ended.flush()
    await went_on.flush()
    first = await as_of(container, ended.tenant, D)
    second = await as_of(container, went_on.tenant, D)
    for one, other in zip(ids[ended.tenant], ids[went_on.tenant], strict=True):
        assert (one in first) == (other in second)
        if one in first:
            assert features(first[one], D) == features(second[other], D)


async def test_features_count_replies_reads_campaigns_and_history_on_their_own_days(
    container: bootstrap.Container,
) -> None:
    history = History(container, uuid.uuid4().hex)
    fan_id = fan_ids()[0]
    history.fan(fan_id, at(0))
    history.fan_wrote(fan_id, at(50, 10))
    history.sent(fan_id, at(50, 13))  # answers the fan after 3 hours
    history.fan_wrote(fan_id, at(50, 14))  # the fan answers after 1 hour
    history.read(history.sent(fan_id, at(55), campaign=3), at(56))
    history.bought(fan_id, at(57), 2500)
    # Imported on day 70 (after D), dated day 20: history fills its own past day.
    history.imported(fan_id, at(70), at(20), 4000)
    history.fan_wrote(fan_id, at(58, 9))  # unanswered at D
    await history.flush()
    fan = (await as_of(container, history.tenant, D))[fan_id]
    assert fan.first_day == date(2026, 1, 1)
    assert (fan.purchases, fan.spend_cents, fan.purchases_30, fan.spend_30) == (2, 6500, 1, 2500)
    # Two replies: to the one-to-one message, and (day 58) to the campaign's.
    assert (fan.fan_messages, fan.fan_messages_30, fan.fan_replies_30) == (3, 3, 2)
    assert (fan.account_messages_30, fan.campaign_messages_30, fan.reads_30) == (1, 1, 1)
    assert (fan.answers, fan.answer_seconds) == (1, 3 * 3600)
    # Plain floats, as the scores' JSON needs them (a numeric sum would come back a Decimal).
    assert all(type(value) is float for value in features(fan, D))
    values = dict(zip(("since_purchase", "never"), features(fan, D), strict=False))
    assert values == {"since_purchase": 1.5, "never": 0.0}
    assert features(fan, D)[14] == pytest.approx(15)  # unanswered hours at D


async def test_churned_means_no_message_and_no_purchase_in_the_30_days_from_the_cut_off(
    container: bootstrap.Container,
) -> None:
    history = History(container, uuid.uuid4().hex)
    wrote, bought, only_read, too_late = fan_ids()
    for fan_id in (wrote, bought, only_read, too_late):
        history.fan(fan_id, at(0))
    history.fan_wrote(wrote, CUT + timedelta(days=29, hours=23))
    history.bought(bought, CUT)
    history.read(history.sent(only_read, CUT + timedelta(days=1)), CUT + timedelta(days=2))
    history.fan_wrote(too_late, CUT + timedelta(days=30))
    await history.flush()
    labels = {
        k: v.churned for k, v in (await as_of(container, history.tenant, D, label=True)).items()
    }
    assert labels == {wrote: False, bought: False, only_read: True, too_late: True}


async def test_erasing_a_fan_removes_its_rows_and_score_and_later_activity_is_not_kept(
    container: bootstrap.Container,
) -> None:
    history = History(container, uuid.uuid4().hex)
    erased, kept = fan_ids()[:2]
    for fan_id in (erased, kept):
        history.fan(fan_id, at(0))
        history.read(history.sent(fan_id, at(1)), at(2))
        history.bought(fan_id, at(3))
    late = history.sent(erased, at(3))
    await history.flush()
    await catch_up_to_head(container, [ChurnActivityProjection()])
    await container.pool.execute(
        "INSERT INTO churn_scores (tenant_id, fan_id, model_version, risk, factors)"
        " SELECT $1, f, 1, 0.5, '[]' FROM unnest($2::bigint[]) AS f",
        history.tenant,
        [erased, kept],
    )
    history.erased(erased, at(4))
    history.read(late, at(5))  # the platform's webhook may still come
    await history.flush()
    await catch_up_to_head(container, [ChurnActivityProjection()])
    for table in ("churn_fans", "churn_fan_days", "churn_messages", "churn_scores"):
        rows = await container.pool.fetch(
            f"SELECT DISTINCT fan_id FROM {table} WHERE tenant_id = $1", history.tenant
        )
        assert [row["fan_id"] for row in rows] == [kept], table
