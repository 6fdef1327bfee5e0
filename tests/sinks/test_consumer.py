"""The sink process on the real broker and the real engine (tier 1: chdb in this process):
every topic lands, the answers equal the direct load's, bad records go to the .dlq,
offsets are committed only up to what is stored."""

from __future__ import annotations

import asyncio
import time

import pytest

from schemas.settings import Settings, SinkSettings
from sinks.catalogue import run_query
from sinks.consumer import Sink
from sinks.store import Store
from sinks.writer import Writer
from tests.sinks import dataset
from tests.sinks.kafka_util import committed_equals_end, make_topics, produce, read_all


def _key(record: object) -> bytes:
    return str(
        getattr(record, "account_id", None) or getattr(record, "industry_code", "k")
    ).encode()


async def _run_until_committed(
    sink: Sink, bootstrap: str, group: str, topics: list[str], timeout: float = 60
) -> None:
    """Run `sink` until its group committed the end of `topics` (or `timeout`), then stop."""
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not await committed_equals_end(
            bootstrap, group, topics
        ):
            assert not task.done(), task.exception()
            await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_sink_stores_every_topic_then_commits(
    store: Store, bootstrap: str, unique: str
) -> None:
    names = await make_topics(bootstrap, unique)
    topic_of = {standard: name for name, standard in names.items()}
    messages = [(topic_of[t], _key(r), r.dumps()) for t, r in dataset.records()]
    messages.append((topic_of["emissions.windows"], b"E1", b'{"account_id": "E1"}'))  # bad
    await produce(bootstrap, messages)
    settings = Settings(sinks=SinkSettings(batch_rows=7, batch_seconds=0.2))
    writer = Writer(store, batch_rows=7, batch_seconds=0.2)
    group = f"sink-{unique}"
    sink = Sink(writer, settings, bootstrap, topics=names, group_id=group)
    await _run_until_committed(sink, bootstrap, group, list(names))
    assert await committed_equals_end(bootstrap, group, names)
    assert sink.stored_batches >= 2 and sink.dead_letters == 1
    # the same hand-computed answers as the direct load (tests/sinks/dataset.py)
    top = run_query(store, "top-emitters", {"from_date": "2026-01-01", "to_date": "2026-02-28"})
    assert [(r["account_id"], r["tco2e"]) for r in top[0].records()] == [
        ("E2", 8.0),
        ("E1", 6.0),
        ("E3", 1.5),
    ]
    loans = run_query(store, "loan-eligibility", {"as_of": dataset.AS_OF})[0].records()
    assert [(r["account_id"], r["colour"], r["k"]) for r in loans] == [
        ("E1", "light_green", 1.2),
        ("E2", "yellow", 2.0),
        ("E3", "dark_green", 0.3),
    ]
    balance = run_query(store, "benefit-balance", {"account_id": "P1"})[1].records()
    assert balance[0]["points"] == 25.0
    dead = await read_all(bootstrap, f"{topic_of['emissions.windows']}.dlq", 1)
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["reason"] == b"missing_field"
    assert dead[0].value == b'{"account_id": "E1"}'


async def test_a_bad_row_of_a_window_batch_goes_to_the_dlq_alone(
    store: Store, bootstrap: str, unique: str
) -> None:
    # windows as the accounting agent sends them: an Arrow batch of many accounts' windows,
    # key None, the accounts' partition
    from aiokafka import AIOKafkaProducer

    from infra.broker import ensure_topics
    from schemas import ARROW_FORMAT, FORMAT_HEADER, EmissionWindow, from_arrow, to_arrow

    topic = f"emissions.windows.{unique}"
    await ensure_topics(bootstrap, [(topic, 2, False), (f"{topic}.dlq", 1, False)])
    start = "2026-01-05T00:00:00+00:00"
    good = [dataset.window(a, "electricity", start, 1.0, 0) for a in ("A", "B")]
    bad = {**good[0].asdict(), "account_id": "C", "energy_type": "plasma"}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        batch = to_arrow(EmissionWindow, [good[0], bad, good[1]])
        headers = [(FORMAT_HEADER, ARROW_FORMAT)]
        await producer.send_and_wait(topic, batch, partition=1, headers=headers)
    finally:
        await producer.stop()
    settings = Settings(sinks=SinkSettings(batch_seconds=0.2))
    group = f"sink-arrow-{unique}"
    writer = Writer(store, batch_seconds=0.2)
    sink = Sink(writer, settings, bootstrap, topics={topic: "emissions.windows"}, group_id=group)
    await _run_until_committed(sink, bootstrap, group, [topic])
    assert sink.dead_letters == 1
    rows = store.query("SELECT account_id FROM emissions_15m FINAL ORDER BY account_id")
    assert rows.result_rows == [("A",), ("B",)]
    (dead,) = await read_all(bootstrap, f"{topic}.dlq", 1)
    headers = dict(dead.headers)
    assert headers["reason"] == b"unknown_energy_type" and headers[FORMAT_HEADER] == ARROW_FORMAT
    assert headers["source-partition"] == b"1" and headers["source-offset"] == b"0"
    assert [r["account_id"] for r in from_arrow(dead.value).to_pylist()] == ["C"]


@pytest.mark.skip(
    reason="the embedded broker (noida-db 0.2.3) never completes a rebalance after a member's "
    "commit is refused with IllegalGeneration during it; plain aiokafka consumers show the "
    "same hang, so this runs against a real Kafka only once the fixtures allow one"
)
async def test_two_sinks_in_one_group_across_rebalances(
    store: Store, bootstrap: str, unique: str
) -> None:
    from datetime import UTC, datetime, timedelta

    from infra.broker import ensure_topics
    from tests.sinks.dataset import window

    topic = f"emissions.windows.{unique}"
    await ensure_topics(bootstrap, [(topic, 4, False), (f"{topic}.dlq", 1, False)])
    group = f"sink-rb-{unique}"
    base = datetime(2026, 6, 1, tzinfo=UTC)

    def phase(rev: int) -> list[tuple[str, bytes, bytes]]:
        # window i of account A{i % 10}: revision rev is (i + 1)(rev + 1)/100 tCO2e
        return [
            (
                topic,
                f"A{i % 10}".encode(),
                window(
                    f"A{i % 10}",
                    "electricity",
                    (base + timedelta(minutes=15 * (i // 10))).isoformat(),
                    (i + 1) * (rev + 1) / 100,
                    rev,
                ).dumps(),
            )
            for i in range(100)
        ]

    def start() -> tuple[Sink, asyncio.Event, asyncio.Task[None]]:
        settings = Settings(sinks=SinkSettings(batch_rows=15, batch_seconds=0.1))
        sink = Sink(
            Writer(store, batch_rows=15, batch_seconds=0.1),
            settings,
            bootstrap,
            topics={topic: "emissions.windows"},
            group_id=group,
        )
        stop = asyncio.Event()
        return sink, stop, asyncio.create_task(sink.run(stop))

    async def settled(timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not await committed_equals_end(bootstrap, group, [topic]):
            assert time.monotonic() < deadline, "offsets not committed in time"
            await asyncio.sleep(0.3)

    a_sink, a_stop, a_task = start()
    b_task = None
    try:
        await produce(bootstrap, phase(0))
        await settled()
        await produce(bootstrap, phase(1))
        b_sink, b_stop, b_task = start()  # joins: the partitions are split
        await produce(bootstrap, phase(2))
        await settled()
        a_stop.set()  # leaves: B takes every partition
        await asyncio.wait_for(a_task, 60)
        await produce(bootstrap, phase(3))
        await settled()
    finally:
        a_stop.set()
        if b_task is not None:
            b_stop.set()
            await asyncio.wait_for(b_task, 60)
        await asyncio.wait_for(a_task, 60)
    assert a_sink.stored_batches > 0 and b_sink.stored_batches > 0
    final = store.query(
        "SELECT count(), min(revision), sum(tco2e) FROM emissions_15m FINAL"
    ).result_rows[0]
    expected = sum((i + 1) * 4 / 100 for i in range(100))  # revision 3: 4(i + 1)/100 -> 202.0
    assert final[:2] == (100, 3) and final[2] == pytest.approx(expected)
    daily = store.query("SELECT sum(tco2e), sum(windows) FROM emissions_daily").result_rows[0]
    assert daily[0] == pytest.approx(expected) and daily[1] == 100
