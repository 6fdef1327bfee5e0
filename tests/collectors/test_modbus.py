"""The Modbus collector against a real pymodbus server on 127.0.0.1: every data type and byte
order, scaling, batching, garbage to the DLQ, and a mute device that does not stall others."""

from __future__ import annotations

import asyncio
import itertools
import math
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from collectors.devices import load_device_map
from collectors.metrics import READ_ERRORS
from collectors.modbus import ModbusCollector, decode_registers, encode_registers, plan_batches
from collectors.publisher import Publisher
from collectors.runner import Collectors
from infra.broker import free_port
from schemas.settings import Settings
from tests.collectors.conftest import consume

FORMATS = {
    "UINT16": "H",
    "INT16": "h",
    "UINT32": "I",
    "INT32": "i",
    "UINT64": "Q",
    "FLOAT32": "f",
    "FLOAT64": "d",
}


def by_hand(value: float, data_type: str, order: str) -> list[int]:
    """Registers for `value` straight from the definition of the byte-order letters:
    write the value big-endian as bytes A B C D ..., then lay the bytes out as named."""
    raw = struct.pack(">" + FORMATS[data_type], value)
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if order in ("CDAB", "DCBA"):
        words = words[::-1]  # low word first
    if order in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]  # low byte first in each word
    return [int.from_bytes(w, "big") for w in words]


def test_byte_orders_match_hand_computed_registers() -> None:
    # 0x12345678 as ABCD/CDAB/BADC/DCBA, written out by hand
    assert encode_registers(0x12345678, "UINT32", "ABCD") == [0x1234, 0x5678]
    assert encode_registers(0x12345678, "UINT32", "CDAB") == [0x5678, 0x1234]
    assert encode_registers(0x12345678, "UINT32", "BADC") == [0x3412, 0x7856]
    assert encode_registers(0x12345678, "UINT32", "DCBA") == [0x7856, 0x3412]
    # 123456.0 is 0x47F12000 in IEEE 754 single precision
    assert encode_registers(123456.0, "FLOAT32", "ABCD") == [0x47F1, 0x2000]
    assert decode_registers([0x0020, 0xF147], "FLOAT32", "DCBA") == 123456.0
    assert decode_registers([0xFFFF], "INT16") == -1
    for dt in FORMATS:
        for order in ("ABCD", "CDAB", "BADC", "DCBA"):
            value = 1234 if "INT" in dt else 1234.5
            assert encode_registers(value, dt, order) == by_hand(value, dt, order)
            assert decode_registers(by_hand(value, dt, order), dt, order) == value


# every data type in every byte order, each in its own 4-register slot on holding registers
CASES: list[tuple[str, str, float, float, float]] = [  # data_type, order, raw, scale, offset
    ("UINT16", "ABCD", 0xBEEF, 1.0, 0.0),
    ("UINT16", "BADC", 0xBEEF, 0.5, 0.0),
    ("INT16", "ABCD", 1234, 1.0, 0.0),
    ("INT16", "DCBA", 4321, 0.1, 0.0),
]
for _dt, _raw in (
    ("UINT32", 0x12345678),
    ("INT32", 123456789),
    ("UINT64", 0x0123456789ABCDEF),
    ("FLOAT32", 123456.0),
    ("FLOAT64", 98765.4321),
):
    for _order in ("ABCD", "CDAB", "BADC", "DCBA"):
        CASES.append((_dt, _order, _raw, 0.001 if _dt == "UINT64" else 1.0, 0.0))
CASES.append(("UINT32", "CDAB", 0x12345678, 0.1, 5.0))  # scale and offset


def _server(
    devices: list[SimDevice],
) -> tuple[ModbusTcpServer, int]:
    port = free_port()
    return ModbusTcpServer(devices, address=("127.0.0.1", port)), port


def _fill(size: int, writes: dict[int, list[int]]) -> list[int]:
    regs = [0] * size
    for address, values in writes.items():
        regs[address : address + len(values)] = values
    return regs


def _reader(
    image: list[int], calls: list[tuple[int, int]] | None = None, fail_at: int | None = None
) -> Callable[..., Any]:
    async def action(fc: int, start: int, address: int, count: int, regs: list[int], _v: Any):
        if calls is not None:
            calls.append((address, count))
        if fail_at is not None and address <= fail_at < address + count:
            return ExcCodes.ILLEGAL_ADDRESS
        regs[address - start : address - start + count] = image[address : address + count]
        return None

    return action


@pytest.fixture
async def modbus_server() -> AsyncIterator[tuple[int, list[tuple[int, int]]]]:
    """Slave 1: CASES on holding registers 0.., an input register block that differs.
    Slave 2: garbage (NaN float, negative int16, an address that answers exception code 2)."""
    holding = _fill(
        4 * len(CASES), {4 * i: by_hand(raw, dt, o) for i, (dt, o, raw, *_) in enumerate(CASES)}
    )
    inputs = _fill(8, {0: by_hand(777777, "UINT32", "ABCD")})
    garbage = _fill(
        16,
        {
            0: by_hand(math.nan, "FLOAT32", "ABCD"),
            4: by_hand(-5, "INT16", "ABCD"),
            8: by_hand(42, "UINT32", "ABCD"),
            12: by_hand(43, "UINT32", "ABCD"),
        },
    )
    calls: list[tuple[int, int]] = []

    async def by_function(fc: int, start: int, address: int, count: int, regs: list[int], _v: Any):
        image = holding if fc == 3 else inputs  # 3: read holding, 4: read input registers
        regs[address - start : address - start + count] = image[address : address + count]

    one = SimDevice(
        id=1,
        simdata=[SimData(0, count=len(holding), datatype=DataType.REGISTERS)],
        action=by_function,
    )
    # shared block on slave 2: count requests, fail reads that touch address 8
    two = SimDevice(
        id=2,
        simdata=[SimData(0, count=len(garbage), datatype=DataType.REGISTERS)],
        action=_reader(garbage, calls, fail_at=8),
    )
    server, port = _server([one, two])
    await server.serve_forever(background=True)
    yield port, calls
    await server.shutdown()


def _map(tmp_path: Path, port: int, extra: str = "") -> Path:
    lines = [
        "devices:",
        "  - name: gw",
        "    protocol: modbus",
        f"    controller: tcp://127.0.0.1:{port}",
        "    interval: 1s",
        "    max_gap: 3",
        "    meters:",
    ]
    for i, (dt, order, _raw, scale, offset) in enumerate(CASES):
        lines.append(
            f"      - {{meter_id: M-{i}, account_id: ENT-{i % 3}, energy_type: electricity, "
            f"unit: kWh, address: {4 * i}, data_type: {dt}, byte_order: {order}, "
            f"scale: {scale}, offset: {offset}}}"
        )
    lines.append(
        "      - {meter_id: IN-1, account_id: ENT-0, energy_type: electricity, unit: kWh, "
        "register: input, address: 0, data_type: UINT32}"
    )
    path = tmp_path / "devices.yaml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


async def test_every_type_and_byte_order(
    modbus_server: tuple[int, list[Any]],
    publisher: Publisher,
    bootstrap: str,
    topic: str,
    tmp_path: Path,
) -> None:
    port, _ = modbus_server
    device = load_device_map(_map(tmp_path, port)).devices[0]
    collector = ModbusCollector(device, publisher)  # type: ignore[arg-type]
    # 25 meters in 4-register slots (gaps of up to 3 joined), the last one 2 registers
    # wide: one holding read of 4 x 24 + 2 = 98 registers, and one input read
    assert len(CASES) == 25
    assert [(b.register, b.address, b.count) for b in collector.batches] == [
        ("holding", 0, 98),
        ("input", 0, 2),
    ]
    published = await collector.poll_once()
    collector.close()
    await publisher.stop()
    assert published == len(CASES) + 1
    got = await consume(bootstrap, topic)
    values = {r.meter_id: r.value for r in got.readings}
    for i, (_dt, _order, raw, scale, offset) in enumerate(CASES):
        assert values[f"M-{i}"] == pytest.approx(raw * scale + offset, rel=1e-12), CASES[i]
    assert values["IN-1"] == 777777  # function code 4 read the input block, not holding
    # one Arrow message per account per cycle, keyed by account
    assert sorted(m.key for m in got.messages) == [b"ENT-0", b"ENT-1", b"ENT-2"]
    assert all(
        dict(m.headers)["content-type"] == b"application/vnd.apache.arrow.stream"
        for m in got.messages
    )
    r = next(r for r in got.readings if r.meter_id == "M-4")  # UINT32 scale 1: wraps at 2^32
    assert r.counter_max == 2**32 and r.source == "modbus://gw" and r.quality == "good"
    assert got.dlq == []


async def test_garbage_goes_to_the_dlq_and_neighbours_go_on(
    modbus_server: tuple[int, list[tuple[int, int]]],
    publisher: Publisher,
    bootstrap: str,
    topic: str,
    tmp_path: Path,
) -> None:
    port, calls = modbus_server
    path = tmp_path / "garbage.yaml"
    path.write_text(
        "devices:\n  - name: bad\n    protocol: modbus\n"
        f"    controller: tcp://127.0.0.1:{port}\n    slave_id: 2\n    max_gap: 3\n    meters:\n"
        "      - {meter_id: NAN, account_id: E, energy_type: natural_gas, unit: Nm3,"
        " address: 0, data_type: FLOAT32}\n"
        "      - {meter_id: NEG, account_id: E, energy_type: electricity, unit: kWh,"
        " address: 4, data_type: INT16}\n"
        "      - {meter_id: EXC, account_id: E, energy_type: electricity, unit: kWh,"
        " address: 8, data_type: UINT32}\n"
        "      - {meter_id: OK, account_id: E, energy_type: electricity, unit: kWh,"
        " address: 12, data_type: UINT32}\n"
    )
    collector = ModbusCollector(load_device_map(path).devices[0], publisher)  # type: ignore[arg-type]
    before = READ_ERRORS.labels(device="bad", protocol="modbus", kind="exception_code")._value.get()
    await collector.poll_once()
    collector.close()
    await publisher.stop()
    # the batch 0..13 failed on address 8, so each meter was read alone: 1 + 4 requests
    assert calls == [(0, 14), (0, 2), (4, 1), (8, 2), (12, 2)]
    got = await consume(bootstrap, topic)
    assert [(r.meter_id, r.value) for r in got.readings] == [("OK", 43.0)]
    reasons = {}
    for m in got.dlq:
        headers = dict(m.headers)
        reasons[headers["reason"].decode()] = m.value
        assert headers["source-topic"] == topic.encode() and m.key == b"E"
    assert set(reasons) == {"not_finite", "negative_value", "device_error"}
    assert b'"meter_id": "EXC"' in reasons["device_error"]  # reading-shaped, with the meter
    after = READ_ERRORS.labels(device="bad", protocol="modbus", kind="exception_code")._value.get()
    assert after == before + 1


def test_batches_split_at_gaps_and_limits(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    meters = "".join(
        f"      - {{meter_id: M{a}, account_id: E, energy_type: electricity, unit: kWh,"
        f" address: {a}, data_type: UINT32}}\n"
        for a in (0, 2, 4, 10, 12, 200)
    )
    doc = (
        "devices:\n  - name: g\n    protocol: modbus\n    controller: tcp://127.0.0.1:1\n"
        "    max_batch: 8\n    clock: {register: holding, address: 6, data_type: UINT64}\n"
        "    meters:\n" + meters
    )
    path.write_text(doc)
    device = load_device_map(path).devices[0]
    batches = plan_batches(device.meters, device.clock, device.max_batch)  # type: ignore[union-attr]
    # 0-1, 2-3, 4-5 contiguous, clock 6-9 would make 10 > 8 registers: new batch at 6;
    # 10-13 follow the clock but 6..13 is 8 registers: fits; 200 stands alone
    assert [(b.address, b.count) for b in batches] == [(0, 6), (6, 8), (200, 2)]
    # without the clock, 4-5 and 10-11 are 4 unused registers apart: joined only if allowed
    assert [(b.address, b.count) for b in plan_batches(device.meters, None, 125)] == [
        (0, 6),
        (10, 4),
        (200, 2),
    ]
    assert [(b.address, b.count) for b in plan_batches(device.meters, None, 125, 4)] == [
        (0, 14),
        (200, 2),
    ]


async def test_a_mute_device_does_not_stall_the_others(
    modbus_server: tuple[int, list[Any]], bootstrap: str, topic: str, tmp_path: Path
) -> None:
    port, _ = modbus_server

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # accepts, reads, never answers

    mute = await asyncio.start_server(swallow, "127.0.0.1", 0)
    mute_port = mute.sockets[0].getsockname()[1]
    path = tmp_path / "d.yaml"
    path.write_text(
        "devices:\n"
        f"  - {{name: ok, protocol: modbus, controller: 'tcp://127.0.0.1:{port}', slave_id: 2,"
        "      interval: 200ms, meters: [{meter_id: OK, account_id: E, energy_type: electricity,"
        "      unit: kWh, address: 12, data_type: UINT32}]}\n"
        f"  - {{name: mute, protocol: modbus, controller: 'tcp://127.0.0.1:{mute_port}',"
        "      interval: 200ms, timeout: 300ms, retries: 0,"
        "      meters: [{meter_id: MUTE, account_id: E, energy_type: electricity,"
        "      unit: kWh, address: 0, data_type: UINT32}]}\n"
    )
    timeouts = READ_ERRORS.labels(device="mute", protocol="modbus", kind="timeout")
    before = timeouts._value.get()
    settings = Settings(data_dir=str(tmp_path / "var"))
    stop = asyncio.Event()
    try:
        async with Collectors(load_device_map(path), settings, bootstrap, topic=topic) as c:
            asyncio.get_running_loop().call_later(2.0, stop.set)
            await c.run(stop)
            ok, _mute = c.collectors
    finally:
        mute.close()
    # 2 s at 200 ms: ~10 cycles for the healthy device while the mute one times out
    assert ok.cycles >= 7, ok.cycles
    assert timeouts._value.get() - before >= 2
    got = await consume(bootstrap, topic)
    ts = sorted(r.ts for r in got.readings if r.meter_id == "OK")
    assert len(ts) >= 8 and not any(r.meter_id == "MUTE" for r in got.readings)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ts)]
    # never held up by the other device's 300 ms timeouts (held up, a cycle would take 0.5 s)
    assert sorted(gaps)[len(gaps) // 2] < 0.3, gaps
