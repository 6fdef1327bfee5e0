"""Tier 2, the HTTP path: the sink across a ClickHouse outage in the middle of a run.

The chdb HTTP fixture (tests/sinks/chdb_http.py, its own process and data directory) is
killed with SIGKILL while the sink is consuming, more records arrive, and it is started
again on the same port and data. Nothing is lost, nothing is counted twice, and the
offsets are committed only once the rows are stored.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.settings import Settings, SinkSettings
from sinks.consumer import Sink
from sinks.writer import Writer
from tests.sinks.conftest import ChdbHttp, remote_store
from tests.sinks.dataset import window
from tests.sinks.kafka_util import committed_equals_end, make_topics, produce

BASE = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
N = 40  # windows: 20 per account, 3 revisions each


def _msg(topic: str, i: int, rev: int) -> tuple[str, bytes, bytes]:
    account = f"A{i % 2}"
    start = (BASE + timedelta(minutes=15 * (i // 2))).isoformat()
    # revision rev of window i: (i + 1)(rev + 1)/100 tCO2e; the final revision 2 is 3(i + 1)/100
    value = window(account, "electricity", start, (i + 1) * (rev + 1) / 100, rev).dumps()
    return topic, account.encode(), value


async def _until(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while time.monotonic() < deadline:
        if await condition():
            print(f"{what}: {time.monotonic() - started:.1f}s")
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


async def test_no_loss_no_double_count_across_an_outage(
    tmp_path: Path, bootstrap: str, unique: str
) -> None:
    server = ChdbHttp(tmp_path / "clickhouse").start()
    names = await make_topics(bootstrap, unique)
    topic = f"emissions.windows.{unique}"
    group = f"sink-outage-{unique}"
    store = remote_store(server.dsn, "outage")
    settings = Settings(
        sinks=SinkSettings(
            batch_rows=10, batch_seconds=0.1, retry_initial_seconds=0.1, retry_max_seconds=0.5
        )
    )
    sink = Sink(
        Writer(store, batch_rows=10, batch_seconds=0.1),
        settings,
        bootstrap,
        topics={topic: names[topic]},
        group_id=group,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    try:
        await produce(bootstrap, [_msg(topic, i, r) for r in (0, 1) for i in range(N)])
        await _until(lambda: committed_equals_end(bootstrap, group, [topic]), 60, "phase 1 stored")
        server.stop(kill=True)  # the outage
        await produce(bootstrap, [_msg(topic, i, 2) for i in range(N)])

        async def backing_off() -> bool:
            return sink.paused and sink.retries >= 3

        await _until(backing_off, 30, "the sink to pause and retry")
        # nothing of phase 2 is committed while ClickHouse is down
        assert not await committed_equals_end(bootstrap, group, [topic])
        server.start()  # same port, same data directory
        await _until(lambda: committed_equals_end(bootstrap, group, [topic]), 60, "phase 2 stored")
        assert not sink.paused
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        store.close()
    check = remote_store(server.dsn, "outage")
    try:
        final = check.query(
            "SELECT count(), min(revision), max(revision), sum(tco2e) FROM emissions_15m FINAL"
        ).result_rows[0]
        expected = sum(3 * (i + 1) / 100 for i in range(N))  # 3 * 820 / 100 = 24.6
        assert final[:3] == (N, 2, 2)
        assert final[3] == pytest.approx(expected)
        daily = check.query("SELECT sum(tco2e), sum(windows) FROM emissions_daily").result_rows[0]
        assert daily[0] == pytest.approx(expected) and daily[1] == N
    finally:
        check.close()
        server.stop()
