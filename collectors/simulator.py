"""A simulated fleet of meters on a real asyncua server and a real pymodbus server.

`Fleet` is the pure model: N meters in accounts of five (three electricity meters, one
natural-gas meter, one steam meter), each a cumulative counter integrating a nominal
load times a daily shape (factory: 2 shifts 08-20 local time; office: 09-18; steam: a
24-hour process with a slow swing), plus:

- counters near rollover: every 50th meter starts two simulated hours below its
  counter_max (integer registers wrap by themselves);
- a meter reset: meter 3 goes back to 0 six simulated hours after the start;
- occasional bad quality on OPC-UA (0.2 % Uncertain, 0.1 % Bad per update);
- garbage on Modbus: every 97th meter is a float32 that now and then holds NaN.

`Simulator` serves the fleet: OPC-UA meters as Double variables `ns=2;s=<meter_id>.energy`
(SourceTimestamp = simulated time), Modbus meters on gateways of up to 100 meters, each a
slave id of one TCP server, every meter in 4 holding registers from address 4 in one of
the data types and byte orders the collector supports. Registers 0-3 of each gateway hold
the simulated clock (UINT64 Unix milliseconds, ABCD), and the device map it writes names
that `clock` register, so with `speed` > 1 Modbus readings carry simulated time too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from collectors.devices import DATA_TYPES, dump_device_map
from collectors.modbus import encode_registers

__all__ = ["Fleet", "SimMeter", "Simulator", "load_shape"]

log = logging.getLogger(__name__)

NAMESPACE = "urn:carbon-accounts:simulator"
METERS_PER_GATEWAY = 100
REGS_PER_METER = 4
CLOCK_REGS = 4
_LOCAL = timedelta(hours=8)  # the simulated enterprises keep China Standard Time

# (energy type, unit, data type, byte order, scale) by role; electricity cycles through types
_ELECTRICITY = [
    ("UINT32", "ABCD", 0.01),
    ("UINT32", "CDAB", 0.1),
    ("UINT64", "ABCD", 0.001),
    ("FLOAT64", "ABCD", 1.0),
    ("INT32", "DCBA", 0.1),
    ("UINT16", "ABCD", 1.0),
]
_GAS = ("FLOAT32", "CDAB", 1.0)
_STEAM = ("UINT32", "BADC", 0.001)


def load_shape(profile: str, local_hour: float) -> float:
    """Fraction of nominal load at a local hour of day (0..24)."""
    if profile == "factory":
        on = 1.0 / (1 + math.exp(-(local_hour - 8) * 3)) - 1.0 / (
            1 + math.exp(-(local_hour - 20) * 3)
        )
        return 0.3 + 0.7 * on
    if profile == "office":
        on = 1.0 / (1 + math.exp(-(local_hour - 9) * 2)) - 1.0 / (
            1 + math.exp(-(local_hour - 18) * 2)
        )
        return 0.1 + 0.9 * on
    return 0.75 + 0.25 * math.sin((local_hour - 6) / 24 * 2 * math.pi)


@dataclass
class SimMeter:
    """One simulated meter and its register or node address."""

    index: int
    meter_id: str
    account_id: str
    energy_type: str
    unit: str
    protocol: str  # opcua | modbus
    profile: str
    power: float  # nominal consumption per hour, in `unit`
    value: float = 0.0
    data_type: str = "FLOAT64"
    byte_order: str = "ABCD"
    scale: float = 1.0
    gateway: int = 0
    address: int = 0
    reset_at: float | None = None
    garbage: bool = False
    quality: str = "good"

    @property
    def counter_max(self) -> float | None:
        """Where the register wraps (integer types), as the device map derives it."""
        if self.protocol != "modbus" or self.data_type.startswith("FLOAT"):
            return None
        bits = 16 * DATA_TYPES[self.data_type] - (0 if self.data_type.startswith("U") else 1)
        return (2**bits) * self.scale

    def registers(self, rng: random.Random) -> list[int]:
        """The meter's 4 holding registers now."""
        if self.data_type.startswith("FLOAT"):
            raw: float | int = self.value
            if self.garbage and rng.random() < 0.01:
                raw = math.nan
        else:
            bits = 16 * DATA_TYPES[self.data_type] - (0 if self.data_type.startswith("U") else 1)
            raw = int(self.value / self.scale) % (2**bits)
        regs = encode_registers(raw, self.data_type, self.byte_order)
        return regs + [0] * (REGS_PER_METER - len(regs))


class Fleet:
    """The meters and their simulated clock (see the module docstring)."""

    def __init__(
        self,
        meters: int,
        *,
        speed: float = 1.0,
        seed: int = 7,
        start: datetime | None = None,
        opcua_share: float = 0.2,
    ) -> None:
        self.speed = speed
        self.rng = random.Random(seed)
        start = start or datetime.now(UTC).replace(microsecond=0)
        self.start = start.timestamp()
        self._t0 = time.monotonic()
        self.last = self.start
        self.meters: list[SimMeter] = []
        gateway_counts: dict[int, int] = {}
        modbus_index = 0
        for i in range(meters):
            role = i % 5
            protocol = "opcua" if int((i + 1) * opcua_share) > int(i * opcua_share) else "modbus"
            if role < 3:
                energy, unit, profile = "electricity", "kWh", ("factory", "office", "factory")[role]
                power = self.rng.uniform(20, 800)
                dtype, order, scale = _ELECTRICITY[(i // 5 + role) % len(_ELECTRICITY)]
            elif role == 3:
                energy, unit, profile = "natural_gas", "Nm3", "factory"
                power = self.rng.uniform(5, 120)
                dtype, order, scale = _GAS
            else:
                energy, unit, profile = "steam", "GJ", "steam"
                power = self.rng.uniform(0.5, 8)
                dtype, order, scale = _STEAM
            meter = SimMeter(
                index=i,
                meter_id=f"M-{i + 1:05d}",
                account_id=f"ENT-{i // 5 + 1:04d}",
                energy_type=energy,
                unit=unit,
                protocol=protocol,
                profile=profile,
                power=power,
                value=self.rng.uniform(1_000, 50_000) * (power / 100),
            )
            if protocol == "modbus":
                meter.data_type, meter.byte_order, meter.scale = dtype, order, scale
                meter.gateway = modbus_index // METERS_PER_GATEWAY + 1
                slot = gateway_counts.get(meter.gateway, 0)
                gateway_counts[meter.gateway] = slot + 1
                meter.address = CLOCK_REGS + slot * REGS_PER_METER
                meter.garbage = i % 97 == 13 and dtype.startswith("FLOAT")
                modbus_index += 1
            cmax = meter.counter_max
            if cmax is not None:
                meter.value = min(meter.value, cmax * 0.5)
                if i % 50 == 7:  # near rollover: two hours of full load below the wrap
                    meter.value = cmax - 2 * power
            if i == 3:
                meter.reset_at = self.start + 6 * 3600
            self.meters.append(meter)

    def sim_time(self) -> float:
        """Simulated Unix time now."""
        return self.start + (time.monotonic() - self._t0) * self.speed

    def advance(self) -> float:
        """Move every meter to the simulated time now; returns it."""
        now = self.sim_time()
        dt_h = max(0.0, now - self.last) / 3600
        local_hour = ((now + _LOCAL.total_seconds()) % 86400) / 3600
        shapes = {p: load_shape(p, local_hour) for p in ("factory", "office", "steam")}
        rng = self.rng
        for m in self.meters:
            m.value += m.power * shapes[m.profile] * dt_h * rng.uniform(0.9, 1.1)
            if m.reset_at is not None and now >= m.reset_at:
                m.value, m.reset_at = 0.0, None
            cmax = m.counter_max
            if cmax is not None and m.value >= cmax:
                m.value -= cmax
            if m.protocol == "opcua":
                r = rng.random()
                m.quality = "bad" if r < 0.001 else "uncertain" if r < 0.003 else "good"
        self.last = now
        return now


_STATUS = {
    "good": ua.StatusCodes.Good,
    "uncertain": ua.StatusCodes.Uncertain,
    "bad": ua.StatusCodes.Bad,
}


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Simulator:
    """The fleet served over OPC-UA and Modbus TCP on `host`."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        host: str = "127.0.0.1",
        opcua_port: int = 0,
        modbus_port: int = 0,
        tick: float = 0.5,
    ) -> None:
        self.fleet = fleet
        self.host = host
        self.opcua_port = opcua_port or _free_port(host)
        self.modbus_port = modbus_port or _free_port(host)
        self.tick = tick
        self._opcua: Server | None = None
        self._modbus: ModbusTcpServer | None = None
        self._nodes: dict[str, ua.NodeId] = {}
        self._images: dict[int, list[int]] = {}
        self._task: asyncio.Task[None] | None = None
        self.updates = 0

    @property
    def opcua_meters(self) -> list[SimMeter]:
        """The meters served over OPC-UA."""
        return [m for m in self.fleet.meters if m.protocol == "opcua"]

    @property
    def modbus_meters(self) -> list[SimMeter]:
        """The meters served over Modbus TCP."""
        return [m for m in self.fleet.meters if m.protocol == "modbus"]

    @property
    def opcua_endpoint(self) -> str:
        """The OPC-UA endpoint URL."""
        return f"opc.tcp://{self.host}:{self.opcua_port}/carbon-accounts/"

    async def start(self) -> None:
        """Start both servers and the clock."""
        now = self.fleet.advance()
        if self.opcua_meters:
            await self._start_opcua(now)
        if self.modbus_meters:
            await self._start_modbus(now)
        self._task = asyncio.create_task(self._run(), name="simulator")

    async def stop(self) -> None:
        """Stop the clock and both servers."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._modbus is not None:
            await self._modbus.shutdown()
            self._modbus = None
        if self._opcua is not None:
            with contextlib.suppress(Exception):
                await self._opcua.stop()
            self._opcua = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- OPC-UA

    async def _start_opcua(self, now: float) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(self.opcua_endpoint)
        server.set_server_name("carbon-accounts meter simulator")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace(NAMESPACE)
        folder = await server.nodes.objects.add_folder(ua.NodeId("Meters", ns), "Meters")
        for m in self.opcua_meters:
            node = await folder.add_variable(
                ua.NodeId(f"{m.meter_id}.energy", ns), m.meter_id, m.value, ua.VariantType.Double
            )
            self._nodes[m.meter_id] = node.nodeid
        self.namespace = ns
        await server.start()
        self._opcua = server
        await self._write_opcua(now)

    async def _write_opcua(self, now: float) -> None:
        assert self._opcua is not None
        ts = datetime.fromtimestamp(now, UTC)
        for m in self.opcua_meters:
            dv = ua.DataValue(
                ua.Variant(m.value, ua.VariantType.Double),
                StatusCode=ua.StatusCode(_STATUS[m.quality]),
                SourceTimestamp=ts,
                ServerTimestamp=ts,
            )
            await self._opcua.write_attribute_value(self._nodes[m.meter_id], dv)

    # ---------------------------------------------------------------- Modbus

    async def _start_modbus(self, now: float) -> None:
        devices = []
        for gateway in sorted({m.gateway for m in self.modbus_meters}):
            size = CLOCK_REGS + REGS_PER_METER * sum(
                1 for m in self.modbus_meters if m.gateway == gateway
            )
            self._images[gateway] = [0] * size
            devices.append(
                SimDevice(
                    id=gateway,
                    simdata=[SimData(0, count=size, datatype=DataType.REGISTERS)],
                    action=self._action(gateway),
                )
            )
        self._write_modbus(now)
        server = ModbusTcpServer(devices, address=(self.host, self.modbus_port))
        await server.serve_forever(background=True)
        self._modbus = server

    def _action(self, gateway: int) -> Any:
        image = self._images[gateway]

        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: Any,
        ) -> None:
            # serve the current image: the registers are filled at read time
            at = address - start_address
            registers[at : at + count] = image[address : address + count]

        return action

    def _write_modbus(self, now: float) -> None:
        clock = encode_registers(int(now * 1000), "UINT64", "ABCD")
        for image in self._images.values():
            image[0:CLOCK_REGS] = clock
        rng = self.fleet.rng
        for m in self.modbus_meters:
            self._images[m.gateway][m.address : m.address + REGS_PER_METER] = m.registers(rng)

    # ---------------------------------------------------------------- clock

    async def _run(self) -> None:
        next_at = time.monotonic()
        while True:
            next_at += self.tick
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            now = self.fleet.advance()
            self._write_modbus(now)
            if self._opcua is not None:
                await self._write_opcua(now)
            self.updates += 1

    # ---------------------------------------------------------------- device map

    def device_map(self, interval: float = 1.0) -> list[dict[str, Any]]:
        """The device map (as dicts in the file format) matching what is served."""
        devices: list[dict[str, Any]] = []

        def meter(m: SimMeter) -> dict[str, Any]:
            return {
                "meter_id": m.meter_id,
                "account_id": m.account_id,
                "energy_type": m.energy_type,
                "unit": m.unit,
            }

        if self.opcua_meters:
            groups = []
            for mode, part in (("subscription", 0), ("polling", 1)):
                meters = [m for i, m in enumerate(self.opcua_meters) if i % 2 == part]
                if meters:
                    groups.append(
                        {
                            "name": mode,
                            "mode": mode,
                            "interval": f"{interval:g}s",
                            "meters": [
                                {
                                    **meter(m),
                                    "node_id": f"ns={self.namespace};s={m.meter_id}.energy",
                                }
                                for m in meters
                            ],
                        }
                    )
            devices.append(
                {
                    "name": "sim-opcua",
                    "protocol": "opcua",
                    "endpoint": self.opcua_endpoint,
                    "groups": groups,
                }
            )
        for gateway in sorted(self._images):
            devices.append(
                {
                    "name": f"sim-gw-{gateway:02d}",
                    "protocol": "modbus",
                    "controller": f"tcp://{self.host}:{self.modbus_port}",
                    "slave_id": gateway,
                    "interval": f"{interval:g}s",
                    "timeout": "1s",
                    "retries": 1,
                    "max_gap": 2,  # every register of a gateway exists: read across slots
                    "clock": {"register": "holding", "address": 0, "data_type": "UINT64"},
                    "meters": [
                        {
                            **meter(m),
                            "register": "holding",
                            "address": m.address,
                            "data_type": m.data_type,
                            "byte_order": m.byte_order,
                            "scale": m.scale,
                        }
                        for m in self.modbus_meters
                        if m.gateway == gateway
                    ],
                }
            )
        return devices

    def write_device_map(self, path: str | Path, interval: float = 1.0) -> None:
        """Write the matching device map to `path`."""
        dump_device_map(self.device_map(interval), path)
