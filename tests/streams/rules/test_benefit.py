"""Carbon-benefit points: the table, daily caps in the local day, duplicates, bad events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.contracts import BenefitEvent
from schemas.errors import ContractError, ReasonCode
from schemas.settings import Settings
from streams.registry import load_benefit_table
from streams.rules.benefit import BenefitTable, DayLedger, local_day, score

TABLE = load_benefit_table(Settings())  # the packaged defaults


def ev(event_id: str, behaviour: str, quantity: float, unit: str, ts: datetime) -> BenefitEvent:
    return BenefitEvent(
        event_id=event_id, account_id="P1", behaviour=behaviour, quantity=quantity, unit=unit, ts=ts
    )


T0 = datetime(2026, 3, 1, 2, tzinfo=UTC)  # 10:00 in Asia/Shanghai


def test_defaults_are_the_published_values() -> None:
    b = TABLE.behaviours
    assert (b["bus_trip"].grams_per_unit, b["subway_km"].grams_per_unit) == (212.5, 78.4)
    assert b["cycling_km"].grams_per_unit == 93.3
    # points_per_gram: a bus trip earns Jinhua's 10 points
    assert 212.5 * TABLE.points_per_gram == pytest.approx(10.0)


def test_daily_cap_per_behaviour() -> None:
    ledger = DayLedger()
    # bus: 10 points a trip, cap 40: the fifth trip earns nothing and is marked capped
    got = [score(ev(f"b{i}", "bus_trip", 1, "trip", T0), TABLE, ledger) for i in range(5)]
    assert [(p.points, p.capped) for p in got if p] == [(10.0, False)] * 4 + [(0.0, True)]
    # the cap is per behaviour: cycling still earns. 5 km x 93.3 g = 466.5 g -> 21.953 pts
    p = score(ev("c1", "cycling_km", 5, "km", T0), TABLE, ledger)
    assert p is not None and p.reduction_g == pytest.approx(466.5)
    assert p.points == pytest.approx(466.5 * 10 / 212.5, abs=1e-6)
    # 20 subway km: 1568 g -> 73.79 points, cut to the cap of 60
    p = score(ev("s1", "subway_km", 20, "km", T0), TABLE, ledger)
    assert p is not None and (p.points, p.capped) == (60.0, True)


def test_duplicates_count_once() -> None:
    ledger = DayLedger()
    first = score(ev("x", "bus_trip", 1, "trip", T0), TABLE, ledger)
    assert first is not None and first.points == pytest.approx(10.0)
    assert score(ev("x", "bus_trip", 1, "trip", T0), TABLE, ledger) is None
    assert ledger.points == {"bus_trip": pytest.approx(10.0)}


def test_caps_follow_the_local_day() -> None:
    # 15:59 UTC is 23:59 in Asia/Shanghai; 16:01 UTC is 00:01 the next local day
    assert local_day(datetime(2026, 3, 1, 15, 59, tzinfo=UTC), "Asia/Shanghai") == "2026-03-01"
    assert local_day(datetime(2026, 3, 1, 16, 1, tzinfo=UTC), "Asia/Shanghai") == "2026-03-02"


@pytest.mark.parametrize(
    ("behaviour", "quantity", "unit", "reason"),
    [
        ("teleporting", 1, "trip", ReasonCode.UNKNOWN_BEHAVIOUR),
        ("bus_trip", 1, "ride", ReasonCode.UNKNOWN_UNIT),
        ("subway_km", -3, "km", ReasonCode.NEGATIVE_VALUE),
        ("subway_km", 0, "km", ReasonCode.OUT_OF_RANGE),
    ],
)
def test_bad_events_raise_with_a_reason(
    behaviour: str, quantity: float, unit: str, reason: ReasonCode
) -> None:
    ledger = DayLedger()
    with pytest.raises(ContractError) as info:
        score(ev("bad", behaviour, quantity, unit, T0), TABLE, ledger)
    assert info.value.reason == reason
    assert ledger == DayLedger()  # nothing counted


def test_table_validation() -> None:
    with pytest.raises(ValueError, match="points_per_gram"):
        BenefitTable.from_mapping({"behaviours": {}})
    with pytest.raises(ValueError, match=r"behaviours\.bus"):
        BenefitTable.from_mapping({"points_per_gram": 1, "behaviours": {"bus": {"unit": "trip"}}})
