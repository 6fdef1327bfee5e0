"""The accounting agent's snapshot bookkeeping (`_Snapshots`), without Kafka.

What the agent does with it runs against the real broker in tests/e2e
(test_accounting_live.py: restart and recovery; test_scale_out.py: rebalances).
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from streams.agents.accounting import (
    _INBOX_FULL,
    _INBOX_MESSAGES,
    _MAX_PENDING,
    _Arrival,
    _Inbox,
    _Snapshots,
)


def _fetched(partition: int, offset: int) -> Any:
    return SimpleNamespace(partition=partition, offset=offset)


def test_nothing_to_write_is_never_due_or_quiet() -> None:
    snaps = _Snapshots(interval=0.0)
    assert not snaps.due()
    assert not snaps.quiet()


def test_due_after_the_interval_or_when_too_many_messages_wait() -> None:
    snaps = _Snapshots(interval=3600.0)
    snaps.dirty["A"] = 0
    snaps.pending.append(_fetched(0, 1))
    assert not snaps.due()  # an hour to go
    snaps.pending.extend(_fetched(0, i) for i in range(_MAX_PENDING))
    assert snaps.due()  # too many messages held unacked
    quick = _Snapshots(interval=0.01)
    quick.dirty["A"] = 0
    time.sleep(0.02)
    assert quick.due()


def test_quiet_when_no_message_came_since_the_last_look() -> None:
    snaps = _Snapshots(interval=3600.0)
    snaps.pending.append(_fetched(0, 1))
    assert not snaps.quiet()  # first look: one new message since the start
    assert snaps.quiet()  # nothing new since
    snaps.pending.append(_fetched(0, 2))
    assert not snaps.quiet()


def test_take_hands_over_and_resets() -> None:
    snaps = _Snapshots(interval=3600.0)
    snaps.dirty.update(A=0, B=1)
    snaps.pending.append(_fetched(1, 7))
    dirty, pending = snaps.take()
    assert dirty == {"A": 0, "B": 1}
    assert [m.offset for m in pending] == [7]
    assert snaps.dirty == {} and snaps.pending == []
    assert not snaps.due() and not snaps.quiet()


def test_forget_drops_revoked_partitions_only() -> None:
    snaps = _Snapshots(interval=3600.0)
    snaps.dirty.update(A=0, B=1, C=2)
    snaps.pending.extend(_fetched(p, o) for p, o in [(0, 5), (1, 6), (2, 7), (1, 8)])
    snaps.forget({1})
    assert snaps.dirty == {"A": 0, "C": 2}
    assert [(m.partition, m.offset) for m in snaps.pending] == [(0, 5), (2, 7)]


def test_restore_puts_a_failed_snapshot_back_first() -> None:
    snaps = _Snapshots(interval=3600.0)
    snaps.dirty["A"] = 0
    snaps.pending.append(_fetched(0, 1))
    dirty, pending = snaps.take()
    snaps.dirty["B"] = 1  # came while the snapshot was being written
    snaps.pending.append(_fetched(1, 2))
    snaps.restore(dirty, pending)
    assert snaps.dirty == {"A": 0, "B": 1}
    assert [m.offset for m in snaps.pending] == [1, 2]


def _arrival(partition: int, offset: int) -> _Arrival:
    message = SimpleNamespace(
        partition=partition, offset=offset, value=b"v", key=b"A", headers=[("h", b"1")]
    )
    return _Arrival(message)  # type: ignore[arg-type]


def test_an_arrival_reads_like_faust_s_event() -> None:
    got = _arrival(3, 9)
    assert (got.value, got.key, got.headers) == (b"v", b"A", {"h": b"1"})
    assert (got.message.partition, got.message.offset) == (3, 9)


def test_inbox_is_due_at_its_size_and_takes_in_order() -> None:
    inbox = _Inbox()
    assert not inbox.due()
    for i in range(_INBOX_MESSAGES + 5):
        inbox.add(_arrival(0, i))
    assert inbox.due()
    first = inbox.take(_INBOX_MESSAGES)
    assert [e.message.offset for e in first] == list(range(_INBOX_MESSAGES))
    assert [e.message.offset for e in inbox.take(_INBOX_MESSAGES)] == list(
        range(_INBOX_MESSAGES, _INBOX_MESSAGES + 5)
    )
    assert inbox.take(_INBOX_MESSAGES) == [] and not inbox.due()


async def test_a_full_inbox_holds_fetching_until_taken_from() -> None:
    inbox = _Inbox()
    for i in range(_INBOX_FULL):
        inbox.add(_arrival(i % 2, i))
    assert inbox.full()
    waiting = asyncio.ensure_future(inbox.room())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # fetching waits
    inbox.forget({1})  # a revoked partition's half goes
    await asyncio.wait_for(waiting, 1)
    assert not inbox.full()
    assert {e.message.partition for e in inbox.events} == {0}
    assert len(inbox.events) == _INBOX_FULL // 2
    for i in range(_INBOX_FULL // 2):
        inbox.add(_arrival(0, i))
    waiting = asyncio.ensure_future(inbox.room())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    inbox.take(1)
    await asyncio.wait_for(waiting, 1)


def _iv(meter: str, et: str, start_min: int, cons: float, sign: int, seqs: tuple[Any, ...]) -> Any:
    start = 1_767_225_600_000 + start_min * 60_000  # 2026-01-01T00:00Z
    return (meter, et, start, start + 900_000, cons, sign < 0, "", seqs, sign)


def test_intervals_batch_keeps_plus_ones_with_their_account_and_unit() -> None:
    import pyarrow as pa

    from streams.agents.accounting import _intervals_batch, _ipc_stream

    chunks = [
        ("A", [_iv("A-1", "electricity", 0, 1.5, 1, (1, 2))]),
        (
            "B",
            [
                _iv("B-1", "steam", 0, 9.0, -1, (1, 3)),  # taken back: not sent
                _iv("B-1", "steam", 0, 4.0, 1, (1, None)),
                _iv("B-2", "natural_gas", 15, 2.25, 1, (7,)),
            ],
        ),
    ]
    value = _ipc_stream([_intervals_batch(chunks)])
    assert value is not None
    rows = pa.ipc.open_stream(value).read_all().to_pylist()
    got = [
        (r["account_id"], r["meter_id"], r["unit"], r["consumption"], r["source_seqs"])
        for r in rows
    ]
    assert got == [
        ("A", "A-1", "kWh", 1.5, [1, 2]),
        ("B", "B-1", "GJ", 4.0, [1, None]),
        ("B", "B-2", "Nm3", 2.25, [7]),
    ]
    assert rows[2]["start"].minute == 15  # 00:15 to 00:30
    assert (rows[2]["end"] - rows[2]["start"]).total_seconds() == 900


def test_intervals_batch_of_takebacks_only_is_none() -> None:
    from streams.agents.accounting import _intervals_batch, _ipc_stream

    batch = _intervals_batch([("A", [_iv("A-1", "electricity", 0, 1.0, -1, (1, 2))])])
    assert batch.num_rows == 0 and _ipc_stream([batch]) is None


def test_lane_intervals_batch_equals_the_tuples_batch() -> None:
    """The in-order lane's columns make the same EnergyInterval rows as its tuples would."""
    import numpy as np

    from streams.agents.accounting import _interval_columns_batch, _intervals_batch
    from streams.rules.inorder import IntervalColumns

    chunks = [
        (
            "A",
            [_iv("A-1", "electricity", 0, 1.5, 1, (1, 2)), _iv("A-2", "steam", 15, 2.0, 1, (3, 4))],
        ),
        ("B", [_iv("B-1", "natural_gas", 30, 0.25, 1, (None, 9))]),
    ]
    ivs = [iv for _, rows in chunks for iv in rows]
    ivc = IntervalColumns(
        span=np.array([0, 0, 1]),
        meter_id=[iv[0] for iv in ivs],
        energy_type=[iv[1] for iv in ivs],
        start=np.array([iv[2] for iv in ivs], np.int64),
        end=np.array([iv[3] for iv in ivs], np.int64),
        consumption=np.array([iv[4] for iv in ivs]),
        uncertain=np.array([iv[5] for iv in ivs]),
        seq_start=[iv[7][0] for iv in ivs],
        seq_end=[iv[7][1] for iv in ivs],
    )
    got = _interval_columns_batch(ivc, ["A", "B"])
    want = _intervals_batch(chunks)
    assert got.schema == want.schema
    assert got.to_pylist() == want.to_pylist()


def _reading(account: str, meter: str, minute: int, value: float) -> dict[str, Any]:
    from datetime import UTC, datetime, timedelta

    return {
        "meter_id": meter,
        "account_id": account,
        "energy_type": "electricity",
        "kind": "cumulative",
        "value": value,
        "unit": "kWh",
        "ts": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minute),
        "quality": "good",
        "source": "test",
        "seq": minute,
        "counter_max": None,
        "period_start": None,
    }


def _message(key: bytes | None, value: bytes, fmt: bytes, offset: int = 0) -> Any:
    from schemas.codec import FORMAT_HEADER

    return SimpleNamespace(
        key=key,
        value=value,
        headers={FORMAT_HEADER: fmt},
        message=SimpleNamespace(partition=0, offset=offset),
    )


def test_decode_slices_plain_messages_and_keeps_the_odd_ones_apart() -> None:
    import json

    import pyarrow as pa

    from schemas.codec import ARROW_FORMAT, JSON_FORMAT, to_arrow
    from schemas.contracts import Reading
    from schemas.errors import ContractError, ReasonCode
    from streams.agents.accounting import _decode
    from streams.rules.normalise import columns_from_arrow

    a = to_arrow(Reading, [_reading("A", "A-1", 0, 1.0), _reading("A", "A-2", 0, 2.0)])
    b = to_arrow(Reading, [_reading("B", "B-1", 15, 5.0)])
    mixed = to_arrow(Reading, [_reading("C", "C-1", 0, 1.0), _reading("D", "D-1", 0, 3.0)])
    # two record batches in one stream: not plain, read by the general path
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, pa.ipc.open_stream(a).schema) as writer:
        for data in (a, b):
            writer.write_batch(pa.ipc.open_stream(data).read_next_batch())
    two = sink.getvalue().to_pybytes()
    one_json = json.dumps({**_reading("E", "E-1", 30, 7.0), "ts": "2026-01-01T00:30:00Z"})
    events = [
        _message(b"A", a, ARROW_FORMAT),
        _message(b"B", b, ARROW_FORMAT),
        _message(b"C", mixed, ARROW_FORMAT),  # rows of C and D under C's key
        _message(b"X", two, ARROW_FORMAT),
        _message(b"E", one_json.encode(), JSON_FORMAT),
        _message(b"F", b"not arrow", ARROW_FORMAT),
        _message(b"B", b, b"text/csv"),
    ]
    got, shared = _decode(events)
    assert [event for event, _, _ in got] == events  # message order kept
    decoded = [d for _, _, d in got]

    def columns(cols: Any, batch: Any) -> Any:
        return cols if cols is not None else columns_from_arrow(batch)

    summary = [
        [
            (acct, list(columns(cols, b).meter_id), list(columns(cols, b).value))
            for acct, cols, _, _, b in d
        ]
        for d in decoded[:5]
        if not isinstance(d, ContractError)
    ]
    assert summary == [
        [("A", ["A-1", "A-2"], [1.0, 2.0])],
        [("B", ["B-1"], [5.0])],
        [("C", ["C-1"], [1.0]), ("D", ["D-1"], [3.0])],
        [("A", ["A-1", "A-2"], [1.0, 2.0]), ("B", ["B-1"], [5.0])],
        [("E", ["E-1"], [7.0])],
    ]
    # the plain messages A and B are spans of the shared rows (no columns of their own)
    assert decoded[0][0][1] is None and decoded[1][0][1] is None
    assert [d[0][2:4] for d in decoded[:2]] == [(0, 2), (2, 3)]
    assert shared is not None and shared.meter_id[:3] == ["A-1", "A-2", "B-1"]
    assert shared.ts[:3].tolist() == [1_767_225_600_000] * 2 + [1_767_226_500_000]
    assert shared.value[:3].tolist() == [1.0, 2.0, 5.0] and shared.plain.all()
    assert decoded[0][0][4].num_rows == 2  # the message's own batch, for the DLQ
    assert decoded[2][0][1] is not None  # the general path: columns of its own
    assert isinstance(decoded[5], ContractError) and decoded[5].reason == ReasonCode.BAD_ENCODING
    assert isinstance(decoded[6], ContractError) and decoded[6].reason == ReasonCode.BAD_ENCODING


def test_windows_batch_round_trips_through_the_contract() -> None:
    from schemas.codec import ARROW_FORMAT, FORMAT_HEADER, records_from_message
    from schemas.contracts import EmissionWindow
    from streams.agents.accounting import _windows_batch

    window = {
        "account_id": "A",
        "energy_type": "electricity",
        "window_start": "2026-01-01T00:15:00+00:00",
        "window_end": "2026-01-01T00:30:00+00:00",
        "consumption": 12.5,
        "unit": "kWh",
        "tco2e": 0.0071,
        "factor_id": "grid",
        "factor_version": "2023",
        "factor_value": 0.000568,
        "factor_unit": "tCO2/kWh",
        "revision": 2,
        "uncertain": True,
    }
    other = {**window, "account_id": "B", "revision": 1, "uncertain": False}
    got = records_from_message(
        EmissionWindow, _windows_batch([window, other]), {FORMAT_HEADER: ARROW_FORMAT}
    )
    assert [(w.account_id, w.revision, w.uncertain) for w in got] == [
        ("A", 2, True),
        ("B", 1, False),
    ]
    assert got[0].window_start.isoformat() == "2026-01-01T00:15:00+00:00"
    assert got[0].consumption == 12.5 and got[0].factor_version == "2023"
