"""The embedded broker: start, produce and consume through aiokafka, stop, ports, topics."""

from __future__ import annotations

from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from infra.broker import EmbeddedBroker, ensure_topics


async def _round_trip(bootstrap: str, topic: str, n: int) -> list[bytes]:
    await ensure_topics(bootstrap, [(topic, 2, False)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i in range(n):
            await producer.send(topic, f"v{i}".encode(), key=f"k{i % 3}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=f"g-{topic}"
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        for _ in range(50):  # bounded: 50 polls of at most 200 ms
            batch = await consumer.getmany(timeout_ms=200)
            got.extend(m.value for msgs in batch.values() for m in msgs)
            if len(got) >= n:
                break
    finally:
        await consumer.stop()
    return got


async def test_start_produce_consume_stop(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "kafka")
    broker.start()
    try:
        assert broker.running
        got = await _round_trip(broker.bootstrap, "lifecycle", 30)
        assert sorted(got) == sorted(f"v{i}".encode() for i in range(30))
    finally:
        broker.stop()
    assert not broker.running
    assert (tmp_path / "kafka").is_dir()


def test_two_brokers_get_their_own_ports(tmp_path: Path, broker: EmbeddedBroker) -> None:
    with EmbeddedBroker(tmp_path / "second") as second:
        assert second.port != broker.port
        assert second.running and broker.running


async def test_topics_are_created_with_their_partitions(bootstrap: str, unique: str) -> None:
    name = f"parts-{unique}"
    created = await ensure_topics(bootstrap, [(name, 4, False), (f"{name}-c", 1, True)])
    assert sorted(created) == sorted([name, f"{name}-c"])
    assert await ensure_topics(bootstrap, [(name, 4, False)]) == []  # idempotent
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (desc,) = await admin.describe_topics([name])
        assert len(desc["partitions"]) == 4
    finally:
        await admin.close()


async def test_data_persists_across_restart(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "kafka")
    with broker:
        await _round_trip(broker.bootstrap, "persist", 5)
    with EmbeddedBroker(tmp_path / "kafka") as again:
        got = await _round_trip(again.bootstrap, "persist", 10)  # 5 old + 5 new
        assert len(got) == 10
