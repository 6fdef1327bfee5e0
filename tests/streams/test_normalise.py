"""The normalising rules of issue 4, each with a small hand-computed case."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from schemas.errors import ReasonCode
from streams.rules.normalise import Columns, MeterState, normalise

MIN = 60_000
HOUR = 60 * MIN
GRACE = 6 * HOUR
T0 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000)


def row(
    value: float,
    minute: float,
    *,
    meter: str = "M1",
    energy_type: str = "electricity",
    unit: str = "kWh",
    kind: str = "cumulative",
    quality: str = "good",
    seq: int = 0,
    counter_max: float | None = None,
    period_start: float | None = None,
) -> dict[str, Any]:
    """One reading as a row; times are minutes after T0."""
    return {
        "meter_id": meter,
        "energy_type": energy_type,
        "kind": kind,
        "value": value,
        "unit": unit,
        "ts": T0 + int(minute * MIN),
        "quality": quality,
        "seq": seq,
        "counter_max": counter_max,
        "period_start": None if period_start is None else T0 + int(period_start * MIN),
    }


def cols(*rows: dict[str, Any]) -> Columns:
    """Rows as the Columns normalise takes."""
    return Columns(**{k: [r[k] for r in rows] for k in Columns.__slots__})


def run(meters: dict[str, MeterState], *rows: dict[str, Any]):
    return normalise(meters, cols(*rows), GRACE)


def plus(result) -> list[tuple[int, int, float, str]]:
    """(start minute, end minute, consumption, event) of the +1 intervals."""
    return [
        ((s - T0) // MIN, (e - T0) // MIN, c, ev)
        for _m, _et, s, e, c, _u, ev, _seq, sign in result.intervals
        if sign == 1
    ]


def test_cumulative_difference_of_consecutive_readings() -> None:
    meters: dict[str, MeterState] = {}
    result = run(meters, row(100.0, 0), row(112.5, 15), row(130.0, 30))
    # 112.5 - 100 = 12.5 over [0, 15); 130 - 112.5 = 17.5 over [15, 30)
    assert plus(result) == [(0, 15, 12.5, ""), (15, 30, 17.5, "")]
    assert result.rejected == []


def test_state_carries_over_batches() -> None:
    meters: dict[str, MeterState] = {}
    run(meters, row(100.0, 0))
    result = run(meters, row(104.0, 15))
    assert plus(result) == [(0, 15, 4.0, "")]


def test_duplicate_is_ignored_and_counted() -> None:
    meters: dict[str, MeterState] = {}
    run(meters, row(100.0, 0), row(110.0, 15))
    result = run(meters, row(110.0, 15), row(100.0, 0))
    assert result.intervals == []
    assert result.duplicates == {"electricity": 2}
    assert result.rejected == []


def test_conflicting_duplicate_goes_to_dlq() -> None:
    meters: dict[str, MeterState] = {}
    run(meters, row(100.0, 0), row(110.0, 15))
    result = run(meters, row(111.0, 15))
    assert result.intervals == []
    assert [(i, e.reason) for i, e in result.rejected] == [(0, ReasonCode.CONFLICTING_DUPLICATE)]


def test_rollover_with_counter_max() -> None:
    meters: dict[str, MeterState] = {}
    result = run(meters, row(9990.0, 0, counter_max=9999.0), row(20.0, 15, counter_max=9999.0))
    # counter_max - previous + current = 9999 - 9990 + 20 = 29
    assert plus(result) == [(0, 15, 29.0, "rollover")]


def test_reset_without_counter_max() -> None:
    meters: dict[str, MeterState] = {}
    result = run(meters, row(9990.0, 0), row(20.0, 15))
    # a reset: the interval's consumption is the current value, and the reset is recorded
    assert plus(result) == [(0, 15, 20.0, "reset")]


def test_bad_quality_rejected_uncertain_flagged() -> None:
    meters: dict[str, MeterState] = {}
    result = run(
        meters,
        row(100.0, 0),
        row(105.0, 15, quality="bad"),
        row(110.0, 30, quality="uncertain"),
        row(112.0, 45),
    )
    assert [(i, e.reason) for i, e in result.rejected] == [(1, ReasonCode.BAD_QUALITY)]
    # the bad reading is skipped: [0, 30) = 10 (ends at the uncertain one), [30, 45) = 2
    assert plus(result) == [(0, 30, 10.0, ""), (30, 45, 2.0, "")]
    assert [iv[5] for iv in result.intervals] == [True, True]  # uncertain at either end


def test_late_reading_within_grace_splits_its_interval() -> None:
    meters: dict[str, MeterState] = {}
    run(meters, row(100.0, 0), row(130.0, 30))
    result = run(meters, row(120.0, 15))
    # [0, 30) = 30 is taken back, replaced by [0, 15) = 20 and [15, 30) = 10
    minus = [((iv[2] - T0) // MIN, (iv[3] - T0) // MIN, iv[4]) for iv in result.intervals
             if iv[-1] == -1]  # fmt: skip
    assert minus == [(0, 30, 30.0)]
    assert plus(result) == [(0, 15, 20.0, ""), (15, 30, 10.0, "")]


def test_late_reading_before_the_first_one() -> None:
    meters: dict[str, MeterState] = {}
    run(meters, row(100.0, 60))
    result = run(meters, row(90.0, 45))
    assert plus(result) == [(45, 60, 10.0, "")]
    assert [iv[-1] for iv in result.intervals] == [1]


def test_too_late_beyond_grace() -> None:
    meters: dict[str, MeterState] = {}
    run(meters, row(100.0, 0), row(200.0, 7 * 60))
    # 7 h after the first reading; a reading at 0:30 is 6.5 h older than the latest
    result = run(meters, row(105.0, 30))
    assert [(i, e.reason) for i, e in result.rejected] == [(0, ReasonCode.TOO_LATE)]
    # exactly at the grace edge (6 h) is still accepted: 7:00 - 6:00 = 1:00
    result = run(meters, row(114.0, 60))
    assert result.rejected == []
    assert sorted(plus(result)) == [(0, 60, 14.0, ""), (60, 420, 86.0, "")]


def test_state_keeps_only_the_grace_period_and_an_anchor() -> None:
    meters: dict[str, MeterState] = {}
    run(meters, *[row(float(k), 15 * k) for k in range(60)])  # 15 h of readings
    kept = [(r[0] - T0) // MIN for r in meters["M1"].readings]
    last = 15 * 59
    # everything within 6 h of the latest, plus the latest one at or before the horizon
    assert kept == [m for m in range(0, last + 1, 15) if m >= last - 360]


def test_interval_kind_carries_its_own_consumption() -> None:
    meters: dict[str, MeterState] = {}
    result = run(
        meters,
        row(3.5, 15, kind="interval", period_start=0),
        row(4.0, 30, kind="interval", period_start=15),
        row(4.0, 30, kind="interval", period_start=15),  # duplicate
        row(5.0, 30, kind="interval", period_start=15),  # conflicting
    )
    assert plus(result) == [(0, 15, 3.5, ""), (15, 30, 4.0, "")]
    assert result.duplicates == {"electricity": 1}
    assert [(i, e.reason) for i, e in result.rejected] == [(3, ReasonCode.CONFLICTING_DUPLICATE)]


def test_interval_kind_needs_a_period_before_ts() -> None:
    result = run({}, row(1.0, 15, kind="interval"), row(1.0, 15, kind="interval", period_start=15))
    assert [(i, e.reason) for i, e in result.rejected] == [
        (0, ReasonCode.MISSING_FIELD),
        (1, ReasonCode.BAD_TIME),
    ]


def test_bad_values_units_and_energy_types() -> None:
    result = run(
        {},
        row(math.nan, 0),
        row(math.inf, 0),
        row(-1.0, 0),
        row(1.0, 0, unit="therm"),
        row(1.0, 0, energy_type="plutonium"),
        row(1.0, 0, kind="sometimes"),
    )
    assert [e.reason for _i, e in result.rejected] == [
        ReasonCode.NOT_FINITE,
        ReasonCode.NOT_FINITE,
        ReasonCode.NEGATIVE_VALUE,
        ReasonCode.UNKNOWN_UNIT,
        ReasonCode.UNKNOWN_ENERGY_TYPE,
        ReasonCode.BAD_ENUM,
    ]
    assert result.intervals == []


def test_units_convert_to_canonical() -> None:
    meters: dict[str, MeterState] = {}
    result = run(
        meters,
        row(1.0, 0, unit="MWh"),
        row(1.5, 15, unit="MWh"),  # 0.5 MWh = 500 kWh
        row(1000.0, 0, meter="D", energy_type="diesel", unit="L"),
        row(1500.0, 15, meter="D", energy_type="diesel", unit="L"),  # 500 L x 0.84 kg/L = 0.42 t
        row(100.0, 0, meter="S", energy_type="steam", unit="MWh"),
        row(110.0, 15, meter="S", energy_type="steam", unit="MWh"),  # 10 MWh x 3.6 = 36 GJ
    )
    got = {iv[0]: iv[4] for iv in result.intervals}
    assert got["M1"] == 500.0
    assert math.isclose(got["D"], 0.42)
    assert math.isclose(got["S"], 36.0)


def test_state_round_trips_as_plain_data() -> None:
    import json

    meters: dict[str, MeterState] = {}
    run(meters, row(100.0, 0), row(3.0, 15, kind="interval", period_start=0, meter="I"))
    again = {
        m: MeterState.from_dict(json.loads(json.dumps(s.to_dict()))) for m, s in meters.items()
    }
    assert again == meters
