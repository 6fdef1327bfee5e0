"""The embedded broker: start, produce and consume through aiokafka, stop, ports, topics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from infra.broker import COMPACTION, EmbeddedBroker, ensure_topics
from schemas.settings import KafkaSettings


async def _round_trip(bootstrap: str, topic: str, n: int, **options: Any) -> list[bytes]:
    await ensure_topics(bootstrap, [(topic, 2, False)])
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **options
    )
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
        (configs,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        (compacted,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, f"{name}-c")]
        )
    finally:
        await admin.close()
    # a compacted topic rolls small segments (only closed ones are compacted)
    assert _configs(compacted) == {"cleanup.policy": "compact", **COMPACTION}
    assert "segment.bytes" not in _configs(configs)


def _configs(response: Any) -> dict[str, str]:
    """The configs set on the topic itself (source 1, not the broker's defaults) in a
    DescribeConfigs response: (name, value, read only, source, ...) entries."""
    (resource,) = response.resources
    return {e[0]: e[1] for e in resource[4] if e[3] == 1}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_compressed_batches_round_trip(bootstrap: str, unique: str, codec: str) -> None:
    options = KafkaSettings(compression_type=codec).producer_options()
    assert options["compression_type"] == codec
    got = await _round_trip(bootstrap, f"codec-{codec}-{unique}", 40, **options)
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(40))


async def test_data_persists_across_restart(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "kafka")
    with broker:
        await _round_trip(broker.bootstrap, "persist", 5)
    with EmbeddedBroker(tmp_path / "kafka") as again:
        got = await _round_trip(again.bootstrap, "persist", 10)  # 5 old + 5 new
        assert len(got) == 10
