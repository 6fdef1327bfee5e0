"""The empty-fetch pause, against the real embedded broker (which answers fetches at once)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.consumer import fetcher

from infra import fetch_backoff
from infra.broker import ensure_topics


async def _idle_fetches(bootstrap: str, topic: str, seconds: float) -> tuple[int, bytes | None]:
    """Fetches sent by an idle consumer in `seconds`, then the value of one message sent."""
    calls = 0
    inner = fetcher.Fetcher._proc_fetch_request

    async def counted(self: object, *args: object, **kwargs: object) -> bool:
        nonlocal calls
        if self is consumer._fetcher:  # not other tests' consumers still in the process
            calls += 1
        return await inner(self, *args, **kwargs)

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    fetcher.Fetcher._proc_fetch_request = counted  # type: ignore[method-assign]
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=200)
        calls = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=100)
        idle = calls
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"after-idle")
        finally:
            await producer.stop()
        value = None
        deadline = time.monotonic() + 10
        while value is None and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                value = records[0].value
        return idle, value
    finally:
        await consumer.stop()  # must not raise from a pausing fetch
        fetcher.Fetcher._proc_fetch_request = inner  # type: ignore[method-assign]


def test_an_idle_consumer_pauses_between_empty_fetches(bootstrap: str, unique: str) -> None:
    topic = f"idle-{unique}"
    asyncio.run(ensure_topics(bootstrap, [(topic, 1, False)]))
    fetch_backoff.install(0.2)
    try:
        assert fetch_backoff.installed() == 0.2
        paused, value = asyncio.run(_idle_fetches(bootstrap, topic, 1.0))
    finally:
        fetch_backoff.uninstall()
    assert fetch_backoff.installed() == 0.0
    unpaused, _ = asyncio.run(_idle_fetches(bootstrap, f"{topic}", 1.0))
    # 1 s at one fetch per 0.2 s pause: about 5 (the first may start before); the broker
    # answers at once, so without the pause the consumer sends many times more
    assert 1 <= paused <= 8, paused
    assert unpaused > 3 * paused, (unpaused, paused)
    assert value == b"after-idle"  # data still arrives after the pauses
