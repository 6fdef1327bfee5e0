"""The sink process on the real broker and the real engine (tier 1: chdb in this process):
every topic lands, the answers equal the direct load's, bad records go to the .dlq,
offsets are committed only up to what is stored."""

from __future__ import annotations

import asyncio
import time

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
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not await committed_equals_end(
            bootstrap, group, names
        ):
            assert not task.done(), task.exception()
            await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
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
