"""`_writebehind.send_records` against the real broker: whole record batches through
the app's producer, every record stored in order per partition, big ones and tombstones
included."""

from __future__ import annotations

import faust

from infra.broker import ensure_topics
from streams.agents._writebehind import send_records
from tests.sinks.kafka_util import read_all


async def test_send_records_stores_every_record_in_order_per_partition(
    bootstrap: str, unique: str
) -> None:
    topic = f"writebehind-{unique}"
    await ensure_topics(bootstrap, [(topic, 2, False)])
    # small batches, so the records fill several; one record is bigger than a batch
    app = faust.App(
        f"writebehind-{unique}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        producer_max_batch_size=1024,
    )
    records = [(f"k{i}".encode(), f"value {i}".encode() * 8, i % 2) for i in range(300)]
    records[7] = (b"big", b"x" * 5000, 1)
    records[8] = (b"gone", None, 0)  # a deleted key's tombstone
    await app.producer.start()
    try:
        assert await send_records(app, topic, iter(records)) == 300
    finally:
        await app.producer.stop()
    stored = await read_all(bootstrap, topic, expect=300)
    assert len(stored) == 300
    for partition in (0, 1):
        got = [
            (m.key, m.value)
            for m in sorted(stored, key=lambda m: m.offset)
            if m.partition == partition
        ]
        assert got == [(k, v) for k, v, p in records if p == partition]


def test_records_are_the_bytes_faust_would_write() -> None:
    # the json fast path must give Faust's own changelog bytes (recovery reads them back)
    from datetime import UTC, datetime

    from streams.agents._writebehind import DeferredTable

    app = faust.App("writebehind-bytes", broker="kafka://127.0.0.1:1", store="memory://")
    values = {
        "A|electricity|2026-01-01T00:00:00+00:00": [3, 0.125, "2023"],
        "ENT-é": {
            "months": {"2026-01": 1e-7},
            "label": None,
            "at": datetime(2026, 1, 1, tzinfo=UTC),
        },
        "gone": None,
    }
    for raw in (False, True):
        table = app.Table(f"bytes-{raw}", partitions=2)
        if raw:
            table.key_serializer = table.value_serializer = "raw"
        deferred = DeferredTable(table)
        deferred.partition = 1
        for key, value in values.items():
            key = key.encode() if raw else key
            if value is None:
                deferred[key] = b"x" if raw else 0
                del deferred[key]
            else:
                deferred[key] = repr(value).encode() if raw else value
        topic = table.changelog_topic
        expected = [
            (
                topic.prepare_key(k, table.key_serializer)[0],
                None if v is None else topic.prepare_value(v, table.value_serializer)[0],
                1,
            )
            for k in deferred.dirty
            for v in [deferred.data.get(k)]
        ]
        assert list(deferred.records(deferred.take())) == expected
        assert len(expected) == 3 and expected[-1][1] is None


def test_store_data_is_the_memory_stores_own_dict() -> None:
    # what the agents read and write directly is what Faust's table reads and recovers into
    from streams.agents._writebehind import store_data

    app = faust.App("writebehind-store", broker="kafka://127.0.0.1:1", store="memory://")
    table = app.Table("store-data", partitions=2)
    data = store_data(table)
    assert type(data) is dict
    data["a"] = 1
    assert table.data["a"] == 1 and table.get("a") == 1
    table.data["b"] = 2  # Faust's own writes land in it too
    assert data == {"a": 1, "b": 2}
