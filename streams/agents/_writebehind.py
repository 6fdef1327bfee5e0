"""Table state written to its changelog in snapshots, and the services that drive them.

Faust sends one changelog record per table write, through its producer buffer (about
0.2 ms a write measured here): an agent that writes per record is capped by it. Here a
table's writes go to its in-memory data at once, and the keys they touched are written
to the changelog later, once each, by a snapshot; the messages behind them are acked only
after it (the agent's stream is `noack`), so a committed offset never passes stored state.

- `DeferredTable`: a mapping over a Faust table's data that remembers the keys written,
  with the partition of the message that wrote them (the changelog partition Faust
  would have used).
- `Ticker`: a service that calls a coroutine every few seconds until it stops, after the
  consumer (app timers end when stopping starts, but Faust's stop waits for every
  message to be acked, which only a snapshot does).
- `start_before_consumer`: makes a service start, and finish starting, before the
  app's Kafka consumer.
- `store_data`: the dict behind a table's in-memory store, read and written directly.
- `send_records`: a snapshot's records to a changelog as whole record batches (a
  producer send a record costs ~10 us here, most of a snapshot's time).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

import faust
import mode
from faust.utils import json as faust_json

__all__ = ["DeferredTable", "Ticker", "send_records", "start_before_consumer", "store_data"]

log = logging.getLogger(__name__)


def store_data(table: faust.types.TableT) -> MutableMapping[Any, Any]:
    """The mapping a table's data lives in: the in-memory store's own dict (its
    `get` through Faust's mapping classes was ~6% of a worker), else the store."""
    store = table.data
    raw = getattr(store, "data", None)
    return raw if isinstance(raw, dict) else store


class DeferredTable(MutableMapping[Any, Any]):
    """A Faust table's data, read and written directly; written keys kept for `take`.

    Set `partition` to the partition of the message being handled before writing: a
    key's changelog record goes to the partition of the message that last wrote it.
    Values are never changed in place by the callers (they write a new value back), so
    the kept keys are all that changed.
    """

    def __init__(self, table: faust.types.TableT) -> None:
        self.table = table
        self.data: MutableMapping[Any, Any] = store_data(table)
        self.partition: int | None = None
        self.dirty: dict[Any, int | None] = {}

    def __getitem__(self, key: Any) -> Any:
        return self.data[key]

    def get(self, key: Any, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __setitem__(self, key: Any, value: Any) -> None:
        self.data[key] = value
        self.dirty[key] = self.partition

    def __delitem__(self, key: Any) -> None:
        del self.data[key]
        self.dirty[key] = self.partition

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def take(self) -> dict[Any, int | None]:
        """The keys written since the last take, with their partitions; starts afresh."""
        dirty, self.dirty = self.dirty, {}
        return dirty

    def restore(self, dirty: dict[Any, int | None]) -> None:
        """Put back what a failed snapshot took (later writes keep their partition)."""
        self.dirty = {**dirty, **self.dirty}

    def forget(self, partitions: set[int]) -> None:
        """Drop the kept keys of revoked partitions (their new owner recovers them)."""
        self.dirty = {k: p for k, p in self.dirty.items() if p not in partitions}

    def records(self, dirty: dict[Any, int | None]) -> Iterator[tuple[bytes, bytes | None, int]]:
        """(key, value or None for a deleted key, partition) of `dirty`, serialised as
        Faust serialises the table's changelog."""
        topic = self.table.changelog_topic
        table = self.table
        if table.key_serializer == table.value_serializer == "json":
            # Faust's json codec itself, without its schema and registry layers around
            # it (7.5 us a record, not 1): the same bytes
            dumps_key = dumps_value = faust_json.dumps
        else:

            def dumps_key(key: Any) -> bytes:
                return topic.prepare_key(key, table.key_serializer)[0]

            def dumps_value(value: Any) -> bytes:
                return topic.prepare_value(value, table.value_serializer)[0]

        for key, partition in dirty.items():
            if partition is None:
                continue  # written outside a message: nothing to place it by
            value = self.data.get(key)
            yield dumps_key(key), None if value is None else dumps_value(value), partition


class Ticker(mode.Service):
    """Calls `tick` every `interval` seconds until the service stops (after the consumer)."""

    def __init__(self, interval: float, tick: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self._interval = interval
        self._tick = tick

    @mode.Service.task
    async def _ticking(self) -> None:
        while not self.should_stop:
            await self.sleep(self._interval)
            try:
                await self._tick()
            except Exception:  # a failed snapshot is retried at the next tick
                log.exception("snapshot failed")


def start_before_consumer(app: faust.App, service: mode.ServiceT) -> None:
    """Make `service` start (and finish starting) before the app's Kafka consumer."""
    strategy = app.boot_strategy
    server = strategy.server

    def chain() -> list[mode.ServiceT]:
        services = list(server())
        at = services.index(app.consumer) if app.consumer in services else len(services)
        services.insert(at, service)
        return services

    strategy.server = chain  # type: ignore[method-assign]


async def send_records(
    app: faust.App, topic: str, records: Iterable[tuple[bytes, bytes | None, int]]
) -> int:
    """Send (key, value or None, partition) records to `topic`, in order per partition,
    and wait until the broker has them all; returns how many.

    They go as record batches filled here (aiokafka's `create_batch`/`send_batch`), not
    one `send` each: a send creates a future and looks up the topic's metadata per
    record. Same producer as Faust's sends (compression, acks, idempotence), and
    `app.producer.flush()` covers them too.
    """
    producer = app.producer._ensure_producer()
    batches: dict[int, Any] = {}
    sent: list[asyncio.Future[Any]] = []
    count = 0
    for key, value, partition in records:
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it
            sent.append(await producer.send_batch(batch, topic, partition=partition))
            batch = batches[partition] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)  # a batch takes its first
        count += 1
        if count % 512 == 0:
            await asyncio.sleep(0)  # let heartbeats and timers run in a big one
    for partition, batch in batches.items():
        if batch.record_count():
            sent.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*sent)
    return count
