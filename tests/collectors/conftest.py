"""Helpers for the collector tests: a fresh readings topic (and its .dlq) and a consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from collectors.publisher import Publisher
from collectors.spool import Spool
from infra.broker import ensure_topics
from schemas.codec import readings_from_message
from schemas.contracts import Reading
from schemas.dlq import dlq_topic


@dataclass
class Consumed:
    """What a topic and its .dlq hold: decoded readings, raw messages, DLQ records."""

    readings: list[Reading] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)
    dlq: list[Any] = field(default_factory=list)


async def consume(
    bootstrap: str, topic: str, *, idle: float = 1.0, limit: float = 20.0
) -> Consumed:
    """Everything on `topic` and its DLQ: reads every partition up to the end offset it had
    when called (so a slow fetch on a loaded machine cannot end it early), then on until
    `idle` seconds pass with nothing new, within `limit` seconds in all."""
    out = Consumed()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer.topics()  # fetches the metadata partitions_for_topic reads
        partitions = [
            TopicPartition(t, p)
            for t in (topic, dlq_topic(topic))
            for p in consumer.partitions_for_topic(t) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        quiet_since = loop.time()

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while loop.time() < deadline and (await behind() or loop.time() - quiet_since < idle):
            batch = await consumer.getmany(timeout_ms=200)
            for tp, msgs in batch.items():
                for m in msgs:
                    quiet_since = loop.time()
                    if tp.topic == topic:
                        out.messages.append(m)
                        for r in readings_from_message(m.value, dict(m.headers)):
                            assert isinstance(r, Reading), r
                            out.readings.append(r)
                    else:
                        out.dlq.append(m)
    finally:
        await consumer.stop()
    return out


@pytest.fixture
async def topic(bootstrap: str, unique: str) -> str:
    """A fresh readings topic with its .dlq, 2 partitions each."""
    name = f"readings-{unique}"
    await ensure_topics(bootstrap, [(name, 2, False), (dlq_topic(name), 2, False)])
    return name


@pytest.fixture
async def publisher(bootstrap: str, topic: str, tmp_path: Path) -> AsyncIterator[Publisher]:
    """A started publisher on the session broker, spooling under tmp_path."""
    pub = Publisher(bootstrap, Spool(tmp_path / "spool", 16 * 2**20), topic=topic)
    await pub.start()
    yield pub
    if not pub._closing:
        await pub.stop()
