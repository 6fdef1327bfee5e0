"""End to end through the real broker and a real Faust worker: reference data and emission
windows in, colour changes out on `accounts.labels` (each test run on its own topics)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from infra.broker import EmbeddedBroker, ensure_topics
from schemas.contracts import Account, Benchmark, Denominator, EmissionWindow
from schemas.settings import Settings
from schemas.topics import dlq
from streams.agents import labelling
from streams.app import create_app
from streams.registry import benchmark_key, denominator_key, produce
from streams.runtime import create_topics
from tests.e2e._worker import start_worker, stop_worker


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _window(account_id: str, year: int, month: int, tco2e: float, revision: int = 0) -> Any:
    start = _utc(year, month, 10, 8)
    w = EmissionWindow(
        account_id=account_id,
        energy_type="electricity",
        window_start=start,
        window_end=start + timedelta(minutes=15),
        consumption=tco2e * 1000,
        unit="kWh",
        tco2e=tco2e,
        factor_id="grid-east_china",
        factor_version="2023",
        factor_value=0.001,
        factor_unit="tCO2e/kWh",
        revision=revision,
    )
    return (account_id, w, None)


async def _labels(
    consumer: AIOKafkaConsumer,
    want: int | Callable[[list[dict[str, Any]]], bool],
    timeout: float,
) -> list[dict[str, Any]]:
    # labels until `want` of them (or `want(labels)` holds), at most `timeout` seconds
    out: list[dict[str, Any]] = []
    done = want if callable(want) else lambda got: len(got) >= want
    deadline = time.monotonic() + timeout
    while not done(out) and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            out += [json.loads(r.value) for r in records]
    return out


def _city(unique: str) -> tuple[list[Account], list[Denominator], list[Benchmark]]:
    # two industrial accounts, their 2025 denominators and their industries' benchmarks
    accounts = [
        Account(
            account_id=f"E{i}-{unique}",
            area="industry",
            name=f"E{i}",
            region="east",
            district="d",
            industry_code=code,
            denominator_unit="10k_yuan",
            timezone="UTC",
        )
        for i, code in ((1, "C2614"), (2, "C3011"))
    ]
    dens = [
        Denominator(
            account_id=a.account_id,
            period_start=_utc(2025, 1, 1),
            period_end=_utc(2026, 1, 1),
            value=100.0,
            unit="10k_yuan",
        )
        for a in accounts
    ]
    benches = [
        Benchmark(
            area="industry",
            industry_code=code,
            region="*",
            period_start=_utc(2025, 1, 1),
            period_end=_utc(2026, 1, 1),
            value=value,
            unit="tCO2e/10k_yuan",
            source="test",
            version="v1",
        )
        for code, value in (("C26", 10.0), ("C30", 20.0))
    ]
    return accounts, dens, benches


async def test_windows_to_label_changes(bootstrap: str, settings: Settings, unique: str) -> None:
    settings.kafka.partitions = 2
    settings.streams.app_id = f"labelling-e2e-{unique}"
    settings.streams.timezone = "UTC"

    def name(topic: str) -> str:
        return f"{topic}.{unique}"

    specs = [(name(t), 2, False) for t in labelling.TOPICS]
    specs += [(dlq(name(t)), 2, False) for t in labelling.TOPICS]
    await ensure_topics(bootstrap, specs)
    settings.data_path.mkdir(parents=True, exist_ok=True)  # Faust's datadir lives under it
    app = create_app(settings, bootstrap, agents=[])
    labelling.register(app, settings, topic=name)

    accounts, dens, benches = _city(unique)
    consumer = AIOKafkaConsumer(
        name("accounts.labels"),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"check-{unique}",
    )
    await consumer.start()
    await app.start()
    try:
        await produce(bootstrap, name("benchmarks"), [(benchmark_key(b), b, None) for b in benches])
        await produce(
            bootstrap, name("accounts.registry"), [(a.account_id, a, None) for a in accounts]
        )
        await produce(
            bootstrap,
            name("accounts.denominators"),
            [(denominator_key(d), d, d.account_id) for d in dens],
        )
        # 2025: 100 t a month; one window of 2026-01 closes the year. Intensity 1200 t / 100
        # = 12: E1 K = 12 / 10 = 1.2 (light green), E2 K = 12 / 20 = 0.6 (dark green).
        windows = [_window(a.account_id, 2025, m, 100.0) for a in accounts for m in range(1, 13)]
        windows += [_window(a.account_id, 2026, 1, 1.0) for a in accounts]
        await produce(bootstrap, name("emissions.windows"), windows)
        first, second = accounts[0].account_id, accounts[1].account_id

        def coloured(got: list[dict[str, Any]]) -> bool:
            return {x["account_id"] for x in got if x["new_colour"]} == {first, second}

        got = await _labels(consumer, coloured, timeout=90)
        # Topics are consumed in no fixed order between them: the colour comes with the
        # trigger that completed the data (emissions_change, or benchmark_change when the
        # benchmark, through its fan-out topic, comes last, or first_evaluation when the
        # registry does). Labels before it can only be "no colour, with a reason".
        for account_id, colour in ((first, "light_green"), (second, "dark_green")):
            mine = [x for x in got if x["account_id"] == account_id]
            assert mine[-1]["new_colour"] == colour, got
            assert mine[-1]["revision"] == len(mine)
            assert all(x["new_colour"] is None for x in mine[:-1]), got
            assert {x["reason"] for x in mine[:-1]} <= {
                "incomplete_period",
                "no_benchmark",
                "no_denominator",
            }
        # K = (12 x 100 t / 100) / benchmark
        assert abs(next(x for x in got if x["account_id"] == first and x["k"])["k"] - 1.2) < 1e-9
        revisions = {x["account_id"]: x["revision"] for x in got}

        # a revised March for E1 (100 -> 160 t): 1260 / 100 / 10 = K 1.26 -> yellow;
        # a C30 benchmark revision to 7: E2's K 12 / 7 = 1.71 -> yellow. Nothing else changes.
        await produce(
            bootstrap,
            name("emissions.windows"),
            [_window(accounts[0].account_id, 2025, 3, 160.0, 1)],
        )
        b2 = benches[1].derive(value=7.0, version="v2")
        await produce(bootstrap, name("benchmarks"), [(benchmark_key(b2), b2, None)])
        more = await _labels(consumer, 2, timeout=60)
        assert sorted(
            (x["account_id"], x["old_colour"], x["new_colour"], x["reason"], x["revision"])
            for x in more
        ) == [
            (first, "light_green", "yellow", "emissions_change", revisions[first] + 1),
            (second, "dark_green", "yellow", "benchmark_change", revisions[second] + 1),
        ]
        e2 = next(x for x in more if x["account_id"] == second)
        assert abs(e2["k"] - 12 / 7) < 1e-9 and e2["benchmark_version"] == "v2"
        # bad windows go to the DLQ with their reason, and the stream goes on
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(name("emissions.windows"), b"{not json", key=b"E1")
            await producer.send_and_wait(name("emissions.windows"), b'{"account_id": "E1"}')
        finally:
            await producer.stop()
        dlq_c = AIOKafkaConsumer(
            dlq(name("emissions.windows")),
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
        )
        await dlq_c.start()
        try:
            rejected: list[Any] = []
            deadline = time.monotonic() + 30
            while len(rejected) < 2 and time.monotonic() < deadline:
                for records in (await dlq_c.getmany(timeout_ms=500)).values():
                    rejected += records
        finally:
            await dlq_c.stop()
        assert sorted(dict(r.headers)["reason"] for r in rejected) == [
            b"bad_encoding",
            b"missing_field",
        ]
        assert {r.value for r in rejected} == {b"{not json", b'{"account_id": "E1"}'}
        # and no label arrives for anything of this
        assert await _labels(consumer, 1, timeout=3) == []
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(app.stop(), 30)
        await consumer.stop()


def test_state_survives_a_worker_restart(tmp_path: Path) -> None:
    """The labelling state, written to its changelogs in snapshots (behind the writes),
    is recovered by a restarted `carbon-accounts worker`: a revision after the restart
    is counted against the windows and months from before it.

    On a broker of its own (the worker reads the standard topic names).
    """
    unique = "restart"
    settings = Settings(data_dir=str(tmp_path / "var"))
    settings.kafka.partitions = 2
    accounts, dens, benches = _city(unique)
    first, second = accounts[0].account_id, accounts[1].account_id
    windows = [_window(a.account_id, 2025, m, 100.0) for a in accounts for m in range(1, 13)]
    windows += [_window(a.account_id, 2026, 1, 1.0) for a in accounts]

    def coloured(got: list[dict[str, Any]]) -> bool:
        return {x["account_id"] for x in got if x["new_colour"]} == {first, second}

    async def run(step: str) -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            "accounts.labels",
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            group_id=f"check-{step}",
        )
        await consumer.start()
        try:
            if step == "before":
                await produce(
                    bootstrap, "benchmarks", [(benchmark_key(b), b, None) for b in benches]
                )
                await produce(
                    bootstrap, "accounts.registry", [(a.account_id, a, None) for a in accounts]
                )
                await produce(
                    bootstrap,
                    "accounts.denominators",
                    [(denominator_key(d), d, d.account_id) for d in dens],
                )
                await produce(bootstrap, "emissions.windows", windows)
                return await _labels(consumer, coloured, timeout=90)
            # March of E1 revised (100 -> 160 t): K 1.26, yellow, the next revision
            await produce(bootstrap, "emissions.windows", [_window(first, 2025, 3, 160.0, 1)])
            return await _labels(consumer, lambda got: len(got) > len(before), timeout=90)
        finally:
            await consumer.stop()

    worker_args = ("labelling-restart", "--agents", "labelling")
    worker_env = {"CARBON_ACCOUNTS_STREAMS_TIMEZONE": "UTC"}
    with EmbeddedBroker(tmp_path / "kafka", log_file=tmp_path / "broker.log") as broker:
        bootstrap = broker.bootstrap
        asyncio.run(create_topics(settings, bootstrap))
        worker = start_worker(bootstrap, tmp_path, *worker_args, **worker_env)
        try:
            before = asyncio.run(run("before"))
            assert coloured(before), before
        finally:
            stop_worker(worker)
        worker = start_worker(bootstrap, tmp_path, *worker_args, **worker_env)
        try:
            after = asyncio.run(run("after"))
        finally:
            stop_worker(worker)
    new = after[len(before) :]
    revision = max(x["revision"] for x in before if x["account_id"] == first)
    assert [
        (x["account_id"], x["old_colour"], x["new_colour"], x["reason"], x["revision"]) for x in new
    ] == [(first, "light_green", "yellow", "emissions_change", revision + 1)]
    assert abs(new[0]["k"] - 12.6 / 10) < 1e-9  # (11 x 100 + 160) t / 100 / benchmark 10
