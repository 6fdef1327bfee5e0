"""Helpers of the sink tests on the real embedded broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from infra.broker import ensure_topics
from schemas.topics import dlq
from sinks.writer import SINK_TOPICS

__all__ = ["committed_equals_end", "make_topics", "produce", "read_all"]


async def make_topics(bootstrap: str, unique: str, partitions: int = 2) -> dict[str, str]:
    """Uniquely named twins of the sink topics (and their .dlq); returns name -> standard name."""
    names = {f"{t}.{unique}": t for t in SINK_TOPICS}
    specs = [(n, partitions, False) for n in names] + [(dlq(n), 1, False) for n in names]
    await ensure_topics(bootstrap, specs)
    return names


async def produce(bootstrap: str, messages: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    """Send (topic, key, value) messages with acks=all; returns how many."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    n = 0
    try:
        for topic, key, value in messages:
            await producer.send(topic, value, key=key)
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n


async def committed_equals_end(bootstrap: str, group: str, topics: Iterable[str]) -> bool:
    """Has `group` committed every partition of `topics` up to its end offset?

    Asks through the admin API and a group-less consumer: a consumer of the group itself
    would take part in the group's rebalances.
    """
    topics = list(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or await _partitions(consumer, t))
        ]
        ends = await consumer.end_offsets(tps)
        # a partition never committed counts as 0 (right for an empty one)
        return all((committed[tp].offset if tp in committed else 0) == ends[tp] for tp in tps)
    finally:
        await consumer.stop()
        await admin.close()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # the topic's partitions, fresh
    return consumer.partitions_for_topic(topic) or set()


async def read_all(bootstrap: str, topic: str, expect: int, timeout: float = 20.0) -> list:
    """Read `expect` messages of `topic` from the start (or what came before the timeout)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                out.extend(msgs)
    finally:
        await consumer.stop()
    await asyncio.sleep(0)
    return out
