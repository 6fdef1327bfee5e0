"""The runtime every process starts from: Kafka (embedded or a cluster), topics, ClickHouse.

`Runtime` starts the embedded broker when `KAFKA_BOOTSTRAP_SERVERS` is unset, creates
every topic (with its `.dlq`) with the configured partition count, and opens the
ClickHouse store with its DDL applied. Leaving it stops what it started.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Self

from infra.broker import EmbeddedBroker, ensure_topics, wait_ready
from schemas.settings import Settings
from schemas.topics import all_topics
from sinks.store import Store, open_store

__all__ = ["Runtime", "Step", "create_topics"]

#: progress callback: (step name, detail, seconds it took)
Step = Callable[[str, str, float], None]


async def create_topics(settings: Settings, bootstrap: str) -> list[str]:
    """Create every topic and its `.dlq` that does not exist yet; returns those created."""
    specs = [(t.name, settings.kafka.partitions, t.compacted) for t in all_topics()]
    return await ensure_topics(
        bootstrap, specs, settings.kafka.replication_factor, **settings.kafka.client_options()
    )


class Runtime:
    """Kafka + topics + ClickHouse, started in order and stopped in reverse."""

    def __init__(
        self, settings: Settings, *, with_store: bool = True, on_step: Step | None = None
    ) -> None:
        self.settings = settings
        self.with_store = with_store
        self.on_step = on_step or (lambda *_: None)
        self.broker: EmbeddedBroker | None = None
        self.store: Store | None = None
        self.bootstrap = settings.kafka.bootstrap_servers or ""

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _start(self) -> None:
        s = self.settings
        t = time.monotonic()
        if s.kafka.bootstrap_servers:
            await wait_ready(s.kafka.bootstrap_servers, **s.kafka.client_options())
            self.on_step("kafka", f"cluster {s.kafka.bootstrap_servers}", time.monotonic() - t)
        else:
            self.broker = EmbeddedBroker(s.path("kafka"), port=s.kafka.embedded_port)
            await asyncio.to_thread(self.broker.start)
            self.bootstrap = self.broker.bootstrap
            self.on_step(
                "kafka",
                f"embedded broker on {self.bootstrap}, data in {self.broker.data_dir}",
                time.monotonic() - t,
            )
        t = time.monotonic()
        created = await create_topics(s, self.bootstrap)
        self.on_step(
            "topics",
            f"{len(all_topics())} topics x {s.kafka.partitions} partitions "
            f"({len(created)} created)",
            time.monotonic() - t,
        )
        if self.with_store:
            t = time.monotonic()
            self.store = await asyncio.to_thread(open_store, s)
            where = self.store.dsn if self.store.embedded else "server"
            self.on_step(
                "clickhouse",
                f"{where}, database {s.clickhouse.database}, DDL applied",
                time.monotonic() - t,
            )

    async def __aexit__(self, *exc: object) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.broker is not None:
            await asyncio.to_thread(self.broker.stop)
            self.broker = None
