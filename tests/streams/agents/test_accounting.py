"""The accounting agent's snapshot bookkeeping (`_Snapshots`), without Kafka.

What the agent does with it runs against the real broker in tests/e2e
(test_accounting_live.py: restart and recovery; test_scale_out.py: rebalances).
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from streams.agents.accounting import _MAX_PENDING, _Snapshots


def _event(partition: int, offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset))


def test_nothing_to_write_is_never_due_or_quiet() -> None:
    snaps = _Snapshots(interval=0.0)
    assert not snaps.due()
    assert not snaps.quiet()


def test_due_after_the_interval_or_when_too_many_messages_wait() -> None:
    snaps = _Snapshots(interval=3600.0)
    snaps.dirty["A"] = 0
    snaps.pending.append(("stream", _event(0, 1)))
    assert not snaps.due()  # an hour to go
    snaps.pending.extend(("stream", _event(0, i)) for i in range(_MAX_PENDING))
    assert snaps.due()  # too many messages held unacked
    quick = _Snapshots(interval=0.01)
    quick.dirty["A"] = 0
    time.sleep(0.02)
    assert quick.due()


def test_quiet_when_no_message_came_since_the_last_look() -> None:
    snaps = _Snapshots(interval=3600.0)
    snaps.pending.append(("stream", _event(0, 1)))
    assert not snaps.quiet()  # first look: one new message since the start
    assert snaps.quiet()  # nothing new since
    snaps.pending.append(("stream", _event(0, 2)))
    assert not snaps.quiet()


def test_take_hands_over_and_resets() -> None:
    snaps = _Snapshots(interval=3600.0)
    snaps.dirty.update(A=0, B=1)
    snaps.pending.append(("stream", _event(1, 7)))
    dirty, pending = snaps.take()
    assert dirty == {"A": 0, "B": 1}
    assert [e.message.offset for _, e in pending] == [7]
    assert snaps.dirty == {} and snaps.pending == []
    assert not snaps.due() and not snaps.quiet()


def test_forget_drops_revoked_partitions_only() -> None:
    snaps = _Snapshots(interval=3600.0)
    snaps.dirty.update(A=0, B=1, C=2)
    snaps.pending.extend(("s", _event(p, o)) for p, o in [(0, 5), (1, 6), (2, 7), (1, 8)])
    snaps.forget({1})
    assert snaps.dirty == {"A": 0, "C": 2}
    assert [(e.message.partition, e.message.offset) for _, e in snaps.pending] == [(0, 5), (2, 7)]


def test_restore_puts_a_failed_snapshot_back_first() -> None:
    snaps = _Snapshots(interval=3600.0)
    snaps.dirty["A"] = 0
    snaps.pending.append(("s", _event(0, 1)))
    dirty, pending = snaps.take()
    snaps.dirty["B"] = 1  # came while the snapshot was being written
    snaps.pending.append(("s", _event(1, 2)))
    snaps.restore(dirty, pending)
    assert snaps.dirty == {"A": 0, "B": 1}
    assert [e.message.offset for _, e in snaps.pending] == [1, 2]


def _iv(meter: str, et: str, start_min: int, cons: float, sign: int, seqs: tuple[Any, ...]) -> Any:
    start = 1_767_225_600_000 + start_min * 60_000  # 2026-01-01T00:00Z
    return (meter, et, start, start + 900_000, cons, sign < 0, "", seqs, sign)


def test_intervals_batch_keeps_plus_ones_with_their_account_and_unit() -> None:
    import pyarrow as pa

    from streams.agents.accounting import _intervals_batch

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
    value = _intervals_batch(chunks)
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
    from streams.agents.accounting import _intervals_batch

    assert _intervals_batch([("A", [_iv("A-1", "electricity", 0, 1.0, -1, (1, 2))])]) is None
