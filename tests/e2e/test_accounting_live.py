"""Live stream vs replay: readings through the real broker and a real Faust worker
(`carbon-accounts worker` as a subprocess) give the same windows as `replay` on the
same readings; a factor revision on `factors` re-emits them with a new revision.

The session broker's contract topics are shared with other tests, so everything here
uses accounts, a grid factor region and a factor id made unique for this test.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from infra.broker import EmbeddedBroker
from schemas.codec import (
    ARROW_FORMAT,
    FORMAT_HEADER,
    JSON_FORMAT,
    decode,
    records_from_message,
    to_arrow,
)
from schemas.contracts import EmissionFactor, EmissionWindow, Reading
from schemas.errors import ContractError
from schemas.settings import Settings
from streams.cli.replay_cmd import replay
from streams.runtime import create_topics
from tests.e2e._worker import start_worker, stop_worker

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _readings(unique: str) -> list[dict[str, Any]]:
    """Two accounts x two meters, 3 h of 15-minute readings with jitter, a rollover."""
    rng = random.Random(7)
    out = []
    for a in range(2):
        for m in range(2):
            value = 9000.0 + 100 * m
            for k in range(12):
                value += rng.uniform(5, 50)
                ts = T0 + timedelta(minutes=15 * k + rng.uniform(0, 5))
                out.append(
                    {
                        "meter_id": f"M{a}{m}-{unique}",
                        "account_id": f"E{a}-{unique}",
                        "energy_type": "electricity" if m == 0 else "heat",
                        "kind": "cumulative",
                        "value": round(value % 9999.0, 3),
                        "unit": "kWh" if m == 0 else "GJ",
                        "ts": ts.isoformat(),
                        "quality": "uncertain" if k == 5 else "good",
                        "source": "test",
                        "seq": k,
                        "counter_max": 9999.0,
                        "period_start": None,
                    }
                )
    return out


async def _produce(bootstrap: str, readings: list[dict[str, Any]]) -> None:
    """Send in a shuffled arrival order: JSON one by one and Arrow batches per account."""
    rng = random.Random(11)
    order = readings[:]
    rng.shuffle(order)  # arrival order: all within 3 h, inside the 6 h grace
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        i = 0
        while i < len(order):
            chunk = order[i : i + rng.randint(1, 6)]
            i += len(chunk)
            if len(chunk) == 1:
                await producer.send_and_wait(
                    "meter.readings",
                    json.dumps(chunk[0]).encode(),
                    key=chunk[0]["account_id"].encode(),
                    headers=[(FORMAT_HEADER, JSON_FORMAT)],
                )
                continue
            for account in sorted({r["account_id"] for r in chunk}):
                rows = [
                    {**r, "ts": datetime.fromisoformat(r["ts"])}
                    for r in chunk
                    if r["account_id"] == account
                ]
                await producer.send_and_wait(
                    "meter.readings",
                    to_arrow(Reading, rows),
                    key=account.encode(),
                    headers=[(FORMAT_HEADER, ARROW_FORMAT)],
                )
    finally:
        await producer.stop()


async def _send_factor(bootstrap: str, factor: EmissionFactor) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait("factors", factor.dumps(), key=factor.factor_id.encode())
    finally:
        await producer.stop()


Key = tuple[str, str, datetime]


def _key(w: EmissionWindow) -> Key:
    return (w.account_id, w.energy_type, w.window_start)


class _Windows:
    """Follows emissions.windows (one JSON window or an Arrow batch of many a message),
    keeping the highest revision of our accounts' windows, as contract values."""

    def __init__(self, bootstrap: str, suffix: str, worker: subprocess.Popen[bytes]) -> None:
        self.worker = worker
        self.consumer = AIOKafkaConsumer(
            "emissions.windows", bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        self.suffix = suffix
        self.final: dict[Key, dict[str, Any]] = {}

    async def until(self, check: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.worker.poll() is None:
            batches = await self.consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    for w in records_from_message(EmissionWindow, record.value, record.headers):
                        assert not isinstance(w, ContractError), w
                        if not w.account_id.endswith(self.suffix):
                            continue
                        key = _key(w)
                        if key not in self.final or w.revision > self.final[key]["revision"]:
                            self.final[key] = w.asdict()
            if check(self.final):
                return True
        return False


def _diff(live: dict[Key, dict[str, Any]], expected: list[dict[str, Any]]) -> str:
    """The first difference between live windows and replay's (all fields but revision)."""
    replayed = [decode(EmissionWindow, w) for w in expected]  # contract values, as live's
    want = {_key(w): w.asdict() for w in replayed}
    if set(live) != set(want):
        return (
            f"{len(live)} windows live, {len(want)} replayed: {sorted(set(live) ^ set(want))[:3]}"
        )
    for key, w in want.items():
        got = live[key]
        for field, value in w.items():
            if field == "revision":
                continue
            if isinstance(value, float):
                same = math.isclose(got[field], value, rel_tol=1e-9, abs_tol=1e-9)
            else:
                same = got[field] == value
            if not same:
                return f"{key} {field}: live {got[field]!r}, replay {value!r}"
    return ""


def _same(live: dict[Key, dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    return not _diff(live, expected)


def test_live_stream_matches_replay(bootstrap: str, unique: str, tmp_path: Path) -> None:
    region = f"test_{unique}"
    settings = Settings(data_dir=str(tmp_path / "var"))
    settings.streams.grid_factor_regions = f"*={region}"
    asyncio.run(create_topics(settings, bootstrap))
    readings = _readings(unique)
    lines = [json.dumps(r) for r in readings]
    expected, rejected = replay(lines, settings)
    assert rejected == {}
    assert len(expected) >= 2 * 2 * 12  # >= 12 windows per account and energy type
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CARBON_ACCOUNTS_DATA_DIR": str(tmp_path / "var"),
        "CARBON_ACCOUNTS_STREAMS_APP_ID": f"accounting-{unique}",
        "CARBON_ACCOUNTS_STREAMS_GRID_FACTOR_REGIONS": f"*={region}",
        "CARBON_ACCOUNTS_METRICS_ENABLED": "false",
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "streams", "worker", "--log-level", "WARNING"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    async def scenario() -> None:
        windows = _Windows(bootstrap, unique, worker)
        await windows.consumer.start()
        try:
            await _produce(bootstrap, readings)
            ok = await windows.until(lambda live: _same(live, expected), timeout=40)
            assert ok, f"{_diff(windows.final, expected)}; worker log: {_tail(tmp_path)}"
            revisions = {k: w["revision"] for k, w in windows.final.items()}
            # no electricity factor in the test's region yet: heat's `*` factor only
            assert {w["factor_id"] for w in expected} == {"", "heat-purchased"}
            factor = EmissionFactor(
                factor_id=f"grid-{unique}",
                energy_type="electricity",
                region=region,
                value=0.0005,
                unit="tCO2e/kWh",
                effective_from=datetime(2026, 1, 1, tzinfo=UTC),
                effective_to=None,
                source="test",
                version="1",
            )
            revised, _ = replay(lines, settings, factors=[factor])
            await _send_factor(bootstrap, factor)
            ok = await windows.until(lambda live: _same(live, revised), timeout=60)
            assert ok, f"{_diff(windows.final, revised)}; worker log: {_tail(tmp_path)}"
            for key, w in windows.final.items():
                if key[1] == "electricity":
                    assert w["revision"] == revisions[key] + 1  # re-emitted once, revised
                    assert math.isclose(w["tco2e"], w["consumption"] * 0.0005)
                else:
                    assert w["revision"] == revisions[key]  # heat: not affected
        finally:
            await windows.consumer.stop()

    try:
        asyncio.run(scenario())
    finally:
        stop_worker(worker)
        log.close()


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "worker.log").read_text()[-3000:]


def test_state_survives_a_worker_restart(tmp_path: Path) -> None:
    """Meters' last readings, kept in the table, are recovered from its changelog.

    On a broker of its own whose topics have 4 partitions while the worker is configured
    for 8: the worker takes the topics' count, and each account's state must go to the
    changelog partition numbered like its readings partition, or recovery never sees
    it. Eight accounts, so the states spread over all partitions.
    """
    unique = "restart"
    settings = Settings(data_dir=str(tmp_path / "var"))
    pairs = []
    for a in range(8):
        first, second = (dict(r) for r in _readings(f"{a}{unique}")[:2])  # one meter, 15 min
        assert first["meter_id"] == second["meter_id"]
        pairs.append((first, second))
    lines = [json.dumps(r) for pair in pairs for r in pair]
    expected, _ = replay(lines, settings)
    assert {w["account_id"] for w in expected} == {p[0]["account_id"] for p in pairs}

    with EmbeddedBroker(tmp_path / "kafka", log_file=tmp_path / "broker.log") as broker:
        bootstrap = broker.bootstrap
        settings.kafka.partitions = 4
        asyncio.run(create_topics(settings, bootstrap))  # the worker's own setting is 8
        worker = start_worker(bootstrap, tmp_path, f"accounting-{unique}")

        async def scenario() -> None:
            nonlocal worker
            windows = _Windows(bootstrap, unique, worker)
            await windows.consumer.start()
            try:
                await _produce(bootstrap, [p[0] for p in pairs])
                # first readings make no window; wait until all 8 states are in the changelog
                topic = f"accounting-{unique}-accounting-state-changelog"
                ok = await _changelog_has(bootstrap, topic, count=len(pairs))
                assert ok, _tail(tmp_path)
                stop_worker(worker)
                worker = start_worker(bootstrap, tmp_path, f"accounting-{unique}")
                windows.worker = worker
                # sent while the new worker starts and recovers: it must still be accounted
                await _produce(bootstrap, [p[1] for p in pairs])
                ok = await windows.until(lambda live: _same(live, expected), timeout=120)
                assert ok, f"{_diff(windows.final, expected)}; worker log: {_tail(tmp_path)}"
            finally:
                await windows.consumer.stop()

        try:
            asyncio.run(scenario())
        finally:
            stop_worker(worker)


async def _changelog_has(bootstrap: str, topic: str, count: int = 1, timeout: float = 60) -> bool:
    """Wait for `count` keys on the worker's changelog (without auto-creating the topic)."""
    deadline = time.monotonic() + timeout
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while topic not in await admin.list_topics():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        keys: set[bytes] = set()
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                keys.update(r.key for r in records if r.key is not None)
            if len(keys) >= count:
                return True
        return False
    finally:
        await consumer.stop()
