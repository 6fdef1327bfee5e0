"""The benefit agent's state (PointsBook): days kept per person, too-late events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.contracts import BenefitEvent
from schemas.errors import ContractError, ReasonCode
from schemas.settings import Settings
from streams.agents.benefit import PointsBook
from streams.registry import load_benefit_table


def bus(event_id: str, ts: datetime) -> BenefitEvent:
    return BenefitEvent(
        event_id=event_id, account_id="P1", behaviour="bus_trip", quantity=1, unit="trip", ts=ts
    )


def test_days_kept_and_too_late() -> None:
    people: dict = {}
    book = PointsBook(load_benefit_table(Settings()), "UTC", keep_days=3, people=people)
    day = datetime(2026, 3, 1, 12, tzinfo=UTC)
    for d in range(5):  # days 1..5: only the last 3 are kept
        assert book.on_event(bus(f"e{d}", day + timedelta(days=d))) is not None
    assert sorted(people["P1"]) == ["2026-03-03", "2026-03-04", "2026-03-05"]
    # a replay of day 1 can no longer be told from a new event: too_late, never counted twice
    with pytest.raises(ContractError) as info:
        book.on_event(bus("e0", day))
    assert info.value.reason == ReasonCode.TOO_LATE
    # a duplicate inside the kept days: counted once
    assert book.on_event(bus("e4", day + timedelta(days=4))) is None
    # a bad event does not touch the state
    before = dict(people)
    with pytest.raises(ContractError):
        book.on_event(bus("z", day).derive(behaviour="flying"))
    assert people == before
