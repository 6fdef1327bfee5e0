"""The Kafka publisher both collectors share: validate, batch per account, spool, send.

`publish(device, protocol, rows)` takes one poll cycle's reading rows. Each row passes
`schemas.codec.decode(Reading, ...)`, the one gate of the contract; a row that fails
becomes a JSON record on `<topic>.dlq` with the reason in its headers. The good rows
are grouped by account into one message per account: an Arrow IPC stream in the
reading contract's Arrow schema, header `content-type: application/vnd.apache.arrow.stream`,
key `account_id` (one worker owns an account's meters). Messages go to the disk spool
first and a sender task publishes them from there in order with acks=all and the
idempotent producer, committing the spool position after each acknowledgement (see
`collectors.spool`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
from collections import defaultdict
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from collectors.metrics import READINGS_PUBLISHED, READINGS_SPOOLED
from collectors.spool import Spool, SpoolRecord
from schemas.codec import ARROW_FORMAT, FORMAT_HEADER, JSON_FORMAT, decode, to_arrow
from schemas.contracts import Reading
from schemas.dlq import dlq_headers, dlq_topic
from schemas.errors import ContractError

__all__ = ["Publisher"]

log = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN / inf are not JSON: keep them readable
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return repr(value)


class Publisher:
    """Spool-backed, batching Kafka publisher of readings (see the module docstring)."""

    def __init__(
        self,
        bootstrap: str,
        spool: Spool,
        *,
        topic: str = "meter.readings",
        client_options: dict[str, Any] | None = None,
        request_timeout: float = 5.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.spool = spool
        self.topic = topic
        self.dlq = dlq_topic(topic)
        self.client_options = client_options or {}
        self.request_timeout = request_timeout
        self.max_backoff = max_backoff
        self.connected = False
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.published = 0  # readings acknowledged by Kafka in this process
        self._down = False

    # ---------------------------------------------------------------- input

    def publish(self, device: str, protocol: str, rows: list[dict[str, Any]]) -> int:
        """Validate one cycle's rows, spool one message per account; returns rows accepted."""
        by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            try:
                decode(Reading, row)
            except ContractError as exc:
                self.reject(device, protocol, row, exc)
                continue
            by_account[row["account_id"]].append(row)
        label = f"{device}|{protocol}"
        records = [
            SpoolRecord(
                topic=self.topic,
                key=account.encode(),
                value=to_arrow(Reading, batch),
                headers=[(FORMAT_HEADER, ARROW_FORMAT)],
                counts={label: len(batch)},
                readings=len(batch),
            )
            for account, batch in by_account.items()
        ]
        accepted = sum(len(b) for b in by_account.values())
        self.spool.append(records)
        if not self.connected and accepted:
            READINGS_SPOOLED.labels(device=device, protocol=protocol).inc(accepted)
        self._wake.set()
        return accepted

    def reject(self, device: str, protocol: str, row: dict[str, Any], error: ContractError) -> None:
        """Spool a reading-shaped record for `<topic>.dlq` with the reason (and count it)."""
        body = json.dumps({k: _jsonable(v) for k, v in row.items()}).encode()
        headers = [
            *dlq_headers(error, topic=self.topic),
            (FORMAT_HEADER, JSON_FORMAT),
            ("device", device.encode()),
            ("protocol", protocol.encode()),
        ]
        key = str(row.get("account_id") or "").encode()
        self.spool.append([SpoolRecord(self.dlq, key, body, headers)])
        self._wake.set()

    # ---------------------------------------------------------------- sender

    async def start(self) -> None:
        """Start the sender task (it connects, and reconnects, by itself)."""
        self._task = asyncio.create_task(self._run(), name="publisher")

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Publish what is spooled (up to `drain_timeout` seconds), then stop.

        What is not acknowledged by then stays in the spool for the next run.
        """
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), drain_timeout)
            except TimeoutError:
                log.warning(
                    "publisher: %d readings still spooled at stop", self.spool.backlog_readings
                )
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._close_producer()
        self.spool.close()

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        self.connected = False
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)

    async def _connect(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=int(self.request_timeout * 1000),
            linger_ms=5,
            **self.client_options,
        )
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer
        self.connected = True

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            if self._closing and self.spool.cursor >= self.spool.end:
                return
            if self._producer is None:
                try:
                    await self._connect()
                    backoff = 0.2
                    self._down = False
                    log.info(
                        "publisher: connected to %s; %d readings spooled to send",
                        self.bootstrap,
                        self.spool.backlog_readings,
                    )
                except (KafkaError, OSError) as exc:
                    # warn once per outage, not at every retry
                    level = logging.DEBUG if self._down else logging.WARNING
                    log.log(level, "publisher: Kafka unreachable (%s); spooling", exc)
                    self._down = True
                    if self._closing:
                        return
                    await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
            records = self.spool.read(500)
            if not records:
                if self._closing:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.5)
                continue
            if not await self._send(records):
                self.spool.rewind()
                await self._close_producer()
                if self._closing:
                    return
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.max_backoff)

    async def _send(self, records: list[SpoolRecord]) -> bool:
        """Send in order; commit the acknowledged prefix; False if any send failed."""
        assert self._producer is not None
        futures: list[asyncio.Future[Any]] = []
        error: BaseException | None = None
        for record in records:
            try:
                futures.append(
                    await self._producer.send(
                        record.topic, record.value, key=record.key, headers=record.headers
                    )
                )
            except (KafkaError, OSError) as exc:
                error = exc
                break
        results = await asyncio.gather(*futures, return_exceptions=True)
        acked = 0
        for result in results:
            if isinstance(result, BaseException):
                error = result
                break
            acked += 1
        if acked:
            done = records[:acked]
            readings = sum(r.readings for r in done)
            self.spool.commit(done[-1].position, readings)
            self.published += readings
            for record in done:
                for label, n in record.counts.items():
                    device, protocol = label.split("|", 1)
                    READINGS_PUBLISHED.labels(device=device, protocol=protocol).inc(n)
        if error is not None:
            log.warning("publisher: send failed (%r); will resend from the spool", error)
            return False
        return True
