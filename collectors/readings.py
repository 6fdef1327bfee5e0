"""Building reading rows (plain dicts in the reading contract) from what a device returned.

Both collectors turn a device value into a row here, so scaling, sequence numbers,
timestamps and the checks that send garbage to the DLQ are the same for OPC-UA and
Modbus. Rows are dicts, not Records: a collector makes thousands a second and the
publisher validates each one through `schemas.codec.decode` anyway.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from collectors.devices import MeterSpec
from schemas.contracts import Kind
from schemas.errors import ContractError, ReasonCode

__all__ = ["Sequencer", "make_row", "ms_time", "now_utc", "scaled_value"]


def now_utc() -> datetime:
    """The wall clock as an aware UTC datetime, to the millisecond (Arrow's precision)."""
    return ms_time(time.time_ns() // 1_000_000)


def ms_time(ms: int) -> datetime:
    """Unix milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def truncate_ms(ts: datetime) -> datetime:
    """An aware UTC datetime cut to the millisecond (naive input is taken as UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    ts = ts.astimezone(UTC)
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


class Sequencer:
    """Per-meter sequence numbers that grow across restarts without a state file.

    `seq` is the larger of the previous seq + 1 and the wall clock in milliseconds, so a
    restarted collector continues above every seq it published before (as long as the
    host clock does not step back), and two readings of one meter never share a seq.
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._last_ts: dict[str, datetime] = {}
        self._prev_ts: dict[str, datetime | None] = {}

    def next(self, meter_id: str) -> int:
        """The next seq of a meter."""
        seq = max(self._last.get(meter_id, 0) + 1, time.time_ns() // 1_000_000)
        self._last[meter_id] = seq
        return seq

    def is_new(self, meter_id: str, ts: datetime) -> bool:
        """True once per device timestamp: a re-read of an unchanged value is not a reading."""
        last = self._last_ts.get(meter_id)
        if last is not None and ts <= last:
            return False
        self._prev_ts[meter_id] = last
        self._last_ts[meter_id] = ts
        return True

    def period_start(self, meter_id: str, ts: datetime, interval: float) -> datetime:
        """Where an interval reading at `ts` starts: the meter's previous reading, or one
        poll interval back for the first reading after a start."""
        prev = self._prev_ts.get(meter_id)
        return prev if prev is not None else ts - timedelta(seconds=interval)


def scaled_value(meter: MeterSpec, raw: Any) -> float:
    """`raw * scale + offset`; ContractError if the device did not answer a number."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ContractError(
            ReasonCode.WRONG_TYPE, f"device sent {type(raw).__name__} {raw!r}", "value"
        )
    value = raw * meter.scale + meter.offset
    if not math.isfinite(value):
        raise ContractError(ReasonCode.NOT_FINITE, f"device sent {raw!r}", "value")
    if (
        meter.counter_max is not None
        and meter.kind == Kind.CUMULATIVE
        and value >= meter.counter_max
    ):
        raise ContractError(
            ReasonCode.OUT_OF_RANGE,
            f"{value} is not below counter_max {meter.counter_max}",
            "value",
        )
    return float(value)


def make_row(
    meter: MeterSpec,
    value: Any,
    ts: datetime,
    *,
    quality: str,
    source: str,
    seq: int,
    period_start: datetime | None = None,
) -> dict[str, Any]:
    """A reading row in the contract's field names (value may still be garbage)."""
    return {
        "meter_id": meter.meter_id,
        "account_id": meter.account_id,
        "energy_type": meter.energy_type,
        "kind": meter.kind,
        "value": value,
        "unit": meter.unit,
        "ts": ts,
        "quality": quality,
        "source": source,
        "seq": seq,
        "counter_max": meter.counter_max,
        "period_start": period_start,
    }
