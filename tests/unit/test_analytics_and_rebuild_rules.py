"""Rules with no I/O: UTC days and months of the analytics, the rebuild's schema names, its
progress line, and which projections `crm projections rebuild` picks."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.cli_projections import ProgressBar, chosen_projections
from adapters.postgres.rebuild import Progress, rebuild_schema
from projections.analytics_cohorts import cohort_month
from projections.analytics_common import utc_day, utc_month
from projections.fans import FansProjection
from projections.messages import MessagesProjection


def test_a_purchase_late_in_the_evening_west_of_greenwich_counts_on_the_next_utc_day() -> None:
    evening = datetime(2026, 1, 31, 20, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert utc_day(evening) == date(2026, 2, 1)
    assert utc_month(evening) == date(2026, 2, 1)


@given(st.datetimes(timezones=st.just(UTC)))
def test_the_cohort_month_is_the_first_day_of_the_utc_month_of_the_day(moment: datetime) -> None:
    month = utc_month(moment)
    assert month.day == 1
    assert (month.year, month.month) == (utc_day(moment).year, utc_day(moment).month)


def test_a_fan_joins_the_cohort_of_the_month_they_subscribed_in_when_it_is_known() -> None:
    imported_today = datetime(2026, 12, 6, 9, tzinfo=UTC)
    assert cohort_month(imported_today, date(2024, 3, 18)) == date(2024, 3, 1)
    assert cohort_month(imported_today, None) == date(2026, 12, 1)
    # A subscription day has no time zone: no UTC shift moves it to another month.
    assert cohort_month(imported_today, date(2024, 3, 31)) == date(2024, 3, 1)


def test_one_projection_rebuilds_in_a_schema_named_after_it_and_several_in_rebuild_all() -> None:
    assert rebuild_schema([FansProjection()]) == "rebuild_fans"
    assert rebuild_schema([FansProjection(), MessagesProjection()]) == "rebuild_all"


def test_progress_estimates_the_time_left_from_the_rate_so_far() -> None:
    progress = Progress(applied=50_000, remaining=150_000, seconds=2.0)
    assert progress.rate == 25_000
    assert progress.eta == 6.0
    assert Progress(applied=0, remaining=10, seconds=0.0).eta is None


def test_the_progress_line_shows_the_share_done_the_rate_and_the_eta() -> None:
    out = io.StringIO()
    ProgressBar(out, width=10).show(Progress(applied=250_000, remaining=750_000, seconds=5.0))
    line = out.getvalue()
    assert "[##........]  25%" in line
    assert "250,000/1,000,000 events" in line
    assert "50,000 events/s" in line
    assert "ETA 15s" in line


def test_rebuild_picks_named_projections_or_all_of_them() -> None:
    assert [p.name for p in chosen_projections(["messages", "fans"], False)] == [
        "messages",
        "fans",
    ]
    every = [p.name for p in chosen_projections([], True)]
    assert {"fans", "conversations", "messages", "analytics_fan_revenue"} <= set(every)


@pytest.mark.parametrize(
    ("names", "every", "message"),
    [
        ([], False, "name a projection"),
        (["nope"], False, "no projection 'nope'"),
        (["fans"], True, "not both"),
    ],
)
def test_rebuild_refuses_an_unknown_or_missing_name(
    names: list[str], every: bool, message: str
) -> None:
    with pytest.raises(SystemExit, match=message):
        chosen_projections(names, every)
