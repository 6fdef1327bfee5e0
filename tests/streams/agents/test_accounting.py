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
