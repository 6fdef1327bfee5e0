"""Reading rows: sequence numbers, one reading per device timestamp, interval starts, scaling."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest

from collectors.devices import MeterSpec
from collectors.readings import Sequencer, scaled_value, truncate_ms
from schemas.errors import ContractError

T0 = datetime(2026, 3, 1, 0, 15, tzinfo=UTC)


def test_seq_grows_per_meter_and_starts_above_the_wall_clock() -> None:
    before = time.time_ns() // 1_000_000
    seq = Sequencer()
    a = [seq.next("A") for _ in range(1000)]  # faster than 1 ms apart: +1 each
    assert a == sorted(a) and len(set(a)) == 1000 and a[0] >= before
    # a restarted collector (a new Sequencer) continues above: its first seq is the clock
    assert Sequencer().next("A") >= a[0]


def test_one_reading_per_device_timestamp_and_interval_starts() -> None:
    seq = Sequencer()
    assert seq.is_new("A", T0)
    assert seq.period_start("A", T0, 900) == T0 - timedelta(seconds=900)  # first: one interval
    assert not seq.is_new("A", T0)  # the same value read again
    assert not seq.is_new("A", T0 - timedelta(seconds=1))  # the device clock stepped back
    t1 = T0 + timedelta(minutes=15)
    assert seq.is_new("A", t1)
    assert seq.period_start("A", t1, 900) == T0  # then: from the previous reading
    assert seq.is_new("B", T0)  # meters are independent


def test_scaling_and_garbage() -> None:
    meter = MeterSpec("M", "E", "electricity", "kWh", scale=0.1, offset=2.0, counter_max=100.0)
    assert scaled_value(meter, 500) == pytest.approx(52.0)  # 500 x 0.1 + 2
    for raw, reason in [
        ("12", "wrong_type"),
        (True, "wrong_type"),
        (None, "wrong_type"),
        (math.nan, "not_finite"),
        (980, "out_of_range"),
    ]:
        with pytest.raises(ContractError) as info:
            scaled_value(meter, raw)
        assert info.value.reason == reason, raw


def test_timestamps_are_cut_to_the_millisecond_in_utc() -> None:
    naive = datetime(2026, 3, 1, 8, 0, 0, 123456)
    assert truncate_ms(naive) == datetime(2026, 3, 1, 8, 0, 0, 123000, tzinfo=UTC)
