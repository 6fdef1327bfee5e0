"""The field side of `carbon-accounts demo`: simulated meters and the collector reading them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from schemas.settings import Settings

__all__ = ["FieldDemo"]


class FieldDemo:
    """A simulated fleet (real asyncua + pymodbus servers) and the collectors reading it."""

    def __init__(self, settings: Settings, bootstrap: str, meters: int, speed: float) -> None:
        from collectors.simulator import Fleet, Simulator

        self.settings = settings
        self.bootstrap = bootstrap
        self.simulator = Simulator(Fleet(meters, speed=speed), tick=0.5)
        self.collectors: Any = None  # a collectors.runner.Collectors once started
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        """Start the simulator, write its device map, start the collectors; returns a summary."""
        from collectors.devices import load_device_map
        from collectors.runner import Collectors

        logging.getLogger("asyncua").setLevel(logging.ERROR)
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        await self.simulator.start()
        path = self.settings.path("devices.yaml")
        self.simulator.write_device_map(path, interval=1.0)
        self.collectors = Collectors(load_device_map(path), self.settings, self.bootstrap)
        await self.collectors.__aenter__()
        self._task = asyncio.create_task(self.collectors.run(self._stop))
        fleet = self.simulator.fleet
        return (
            f"{len(fleet.meters)} meters at {fleet.speed:g}x (OPC-UA + Modbus), "
            f"device map {path}, collectors into meter.readings"
        )

    def rows(self) -> list[tuple[str, str]]:
        """Status rows: the simulated clock and the readings published."""
        if self.collectors is None:
            return []
        fleet = self.simulator.fleet
        publisher = self.collectors.publisher
        sim_now = time.strftime("%Y-%m-%d %H:%M", time.gmtime(fleet.last))
        return [
            ("meters", f"{len(fleet.meters)} simulated, clock {sim_now} UTC"),
            (
                "readings",
                f"{publisher.published} published to meter.readings, "
                f"{publisher.spool.backlog_readings} waiting in the spool",
            ),
        ]

    async def stop(self) -> None:
        """Stop the collectors, then the simulator."""
        self._stop.set()
        if self.collectors is not None:
            await self.collectors.stop()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self.simulator.stop()
