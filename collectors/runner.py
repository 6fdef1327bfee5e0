"""Running every device of a device map into one publisher: what `carbon-accounts collect` does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from collectors.devices import DeviceMap, ModbusDevice
from collectors.modbus import ModbusCollector
from collectors.opcua import OpcUaCollector
from collectors.publisher import Publisher
from collectors.readings import Sequencer
from collectors.spool import Spool
from schemas.settings import Settings

__all__ = ["Collectors"]

log = logging.getLogger(__name__)


class Collectors:
    """Every collector of a device map, their shared publisher and spool.

    >>> async with Collectors(device_map, settings, bootstrap) as c:
    ...     await c.run(stop_event)
    """

    def __init__(
        self,
        device_map: DeviceMap,
        settings: Settings,
        bootstrap: str,
        *,
        topic: str = "meter.readings",
        spool_dir: str | Path | None = None,
        drain_timeout: float = 10.0,
    ) -> None:
        self.device_map = device_map
        self.drain_timeout = drain_timeout
        c = settings.collectors
        self.spool = Spool(spool_dir or settings.path(c.spool_dir), c.spool_max_mb * 2**20)
        self.publisher = Publisher(
            bootstrap, self.spool, topic=topic, client_options=settings.kafka.producer_options()
        )
        sequencer = Sequencer()
        self.collectors: list[Any] = [
            ModbusCollector(d, self.publisher, sequencer)
            if isinstance(d, ModbusDevice)
            else OpcUaCollector(d, self.publisher, sequencer)
            for d in device_map.devices
        ]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Collectors:
        await self.publisher.start()
        self._tasks = [
            asyncio.create_task(c.run(self._stop), name=f"collect-{c.device.name}")
            for c in self.collectors
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop polling, then drain the spool to Kafka (bounded by drain_timeout)."""
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        self._tasks = []
        if not self.publisher._closing:
            await self.publisher.stop(self.drain_timeout)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set (or a collector task dies of a bug, which is raised)."""
        waiter = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait(
                [waiter, *self._tasks], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not waiter and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            waiter.cancel()
