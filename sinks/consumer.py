"""The sink process: a plain aiokafka consumer with manual commits around the Writer.

Why not a Faust agent: the sink must commit an offset only after ClickHouse stored
the row, and stop consuming while ClickHouse is down. A plain consumer with
`enable_auto_commit=False` gives that exactly: read, add to the batch, store, then
commit `last + 1` per partition. While a store fails the consumer pauses every
partition (backpressure: nothing more is fetched), keeps polling so it stays in its
group, and retries with exponential backoff until ClickHouse answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import TopicPartition

from schemas.codec import ARROW_FORMAT, FORMAT_HEADER, arrow_row
from schemas.dlq import dlq_headers, dlq_topic
from schemas.errors import ContractError
from schemas.settings import Settings
from sinks.metrics import PAUSED, RETRIES
from sinks.writer import SINK_TOPICS, Writer

__all__ = ["Sink"]

log = logging.getLogger(__name__)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # no I/O here: a commit from a rebalance callback can wait on the group while
        # the group waits on the callback; the main loop handles it (`_after_rebalance`)
        self.sink.rebalanced = True

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.sink.rebalanced = True
        if self.sink.paused:
            self.sink.consumer.pause(*assigned)


class Sink:
    """Consume the sink topics and store them in ClickHouse, committing after storing."""

    def __init__(
        self,
        writer: Writer,
        settings: Settings,
        bootstrap: str,
        *,
        topics: Mapping[str, str] | None = None,
        group_id: str | None = None,
    ) -> None:
        """`topics` maps the topic names to consume to standard names (default: all standard)."""
        self.writer = writer
        self.settings = settings
        self.bootstrap = bootstrap
        self.topics = dict(topics) if topics is not None else {t: t for t in SINK_TOPICS}
        writer.topics = self.topics
        self.group_id = group_id or settings.sinks.group_id
        self.consumer: AIOKafkaConsumer = None  # type: ignore[assignment]
        self.producer: AIOKafkaProducer | None = None
        self.paused = False
        #: partitions were revoked or assigned since the main loop last looked
        self.rebalanced = False
        self.stored_batches = 0
        self.retries = 0
        self.dead_letters = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; stores and commits what is pending on the way out."""
        kafka = self.settings.kafka
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.writer.batch_rows,
            **kafka.client_options(),
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", **kafka.producer_options()
        )
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe(list(self.topics), listener=_Rebalance(self))
        try:
            await asyncio.to_thread(self.writer.load_zones)
        except Exception as exc:  # the registry loads later through the topic
            log.warning("sink: could not load account time zones: %s", exc)
        try:
            while not stop.is_set():
                timeout = max(0.05, self.writer.batch_seconds / 4)
                batch = await self.consumer.getmany(
                    timeout_ms=int(timeout * 1000),
                    max_records=max(1, self.writer.batch_rows - self.writer.pending_rows),
                )
                if await self._after_rebalance():
                    continue  # the batch may predate the move: read it again
                await self._add(batch)
                if self.writer.due():
                    await self._flush(stop)
            if self.writer.pending_rows or self.writer.pending_offsets:
                await self._flush(stop, once=True)
        finally:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            with contextlib.suppress(Exception):
                await self.producer.stop()

    async def _add(self, batch: dict[TopicPartition, list[Any]]) -> None:
        for tp, messages in batch.items():
            for msg in messages:
                try:
                    rejected = self.writer.add(
                        tp.topic, tp.partition, msg.offset, msg.value, msg.timestamp, msg.headers
                    )
                except ContractError as exc:
                    rejected = [exc]
                for exc in rejected:
                    await self._dead_letter(tp, msg, exc)

    async def _dead_letter(self, tp: TopicPartition, msg: Any, exc: ContractError) -> None:
        """The record verbatim to the topic's `.dlq`: the message, or a batch's bad row
        alone (a one-row Arrow batch, with its content-type)."""
        assert self.producer is not None
        value, headers = msg.value, []
        if exc.row is not None:
            value, headers = arrow_row(msg.value, exc.row), [(FORMAT_HEADER, ARROW_FORMAT)]
        headers += dlq_headers(exc, topic=tp.topic, partition=tp.partition, offset=msg.offset)
        # waits for the broker's ack: the offset is committed with the batch after this
        await self.producer.send_and_wait(dlq_topic(tp.topic), value, key=msg.key, headers=headers)
        self.dead_letters += 1

    def _pause(self) -> None:
        if not self.paused:
            self.consumer.pause(*self.consumer.assignment())
            self.paused = True
            PAUSED.set(1)

    def _resume(self) -> None:
        if self.paused:
            self.consumer.resume(*self.consumer.assignment())
            self.paused = False
            PAUSED.set(0)

    async def _flush(self, stop: asyncio.Event, once: bool = False) -> bool:
        """Store the pending batch (retrying with backoff), then commit its offsets."""
        s = self.settings.sinks
        delay = s.retry_initial_seconds
        while True:
            try:
                offsets = await asyncio.to_thread(self.writer.store_pending)
                break
            except Exception as exc:  # any ClickHouse/transport error: keep the batch, retry
                self.retries += 1
                RETRIES.labels(table="*").inc()  # one batch spans tables: counted once
                log.warning("sink: ClickHouse store failed (%s); retry in %.1fs", exc, delay)
                if once or stop.is_set():
                    return False  # not committed: Kafka gives these records again
                self._pause()
                # keep polling so the group keeps us; paused partitions return nothing,
                # newly assigned ones (a rebalance) are paused
                with contextlib.suppress(KafkaError):
                    batch = await self.consumer.getmany(timeout_ms=int(delay * 1000))
                    if await self._after_rebalance():
                        self._resume()  # a fresh start: pauses again if ClickHouse is down
                        return False  # the batch was dropped: it is read again
                    await self._add(batch)
                delay = min(delay * 2, s.retry_max_seconds)
        self._resume()
        await self._commit(offsets)
        self.stored_batches += 1
        return True

    async def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        if not offsets:
            return
        try:
            await self.consumer.commit(
                {TopicPartition(t, p): off for (t, p), off in offsets.items()}
            )
        except (CommitFailedError, KafkaError) as exc:
            # stored but not committed: a replay stores the same keys again, and the
            # deduplication token and ReplacingMergeTree keep them once
            log.warning("sink: commit failed after storing (%s); records will replay", exc)

    async def _after_rebalance(self) -> bool:
        """After partitions moved: forget the pending batch and read again from the
        committed offsets. Rows already stored but not committed are stored again and
        collapse (same keys); nothing is skipped. Returns whether it did anything."""
        if not self.rebalanced:
            return False
        self.rebalanced = False
        if self.writer.pending_offsets:
            log.info("sink: partitions moved; rereading from the committed offsets")
        self.writer.clear()
        try:
            for tp in self.consumer.assignment():
                committed = await self.consumer.committed(tp)
                if committed:
                    self.consumer.seek(tp, committed)
                else:  # never committed: from the start, as auto_offset_reset says
                    await self.consumer.seek_to_beginning(tp)
        except KafkaError as exc:  # the group is still moving: try again next round
            log.info("sink: cannot seek to the committed offsets yet (%s)", exc)
            self.rebalanced = True
        return True
