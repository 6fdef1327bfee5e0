"""Two Faust workers share the labelling: each owns some partitions of the accounts, a
benchmark reaches both through the fan-out, and each account is labelled exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer

from infra.broker import ensure_topics
from schemas.contracts import Account, Benchmark, Denominator, EmissionWindow
from schemas.settings import Settings
from schemas.topics import dlq
from streams.agents import labelling
from streams.app import create_app
from streams.registry import benchmark_key, denominator_key, partition_for, produce

PARTITIONS = 4


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _window(account_id: str, year: int, month: int, tco2e: float) -> Any:
    start = _utc(year, month, 10, 8)
    return (
        account_id,
        EmissionWindow(
            account_id=account_id, energy_type="electricity", window_start=start,
            window_end=start + timedelta(minutes=15), consumption=tco2e * 1000, unit="kWh",
            tco2e=tco2e, factor_id="f", factor_version="1", factor_value=0.001,
            factor_unit="tCO2e/kWh", revision=0,
        ),
        None,
    )  # fmt: skip


async def test_two_workers_label_each_account_once(
    bootstrap: str, settings: Settings, unique: str
) -> None:
    settings.kafka.partitions = PARTITIONS
    settings.streams.app_id = f"labelling-2w-{unique}"
    settings.streams.timezone = "UTC"
    settings.data_path.mkdir(parents=True, exist_ok=True)

    def name(topic: str) -> str:
        return f"{topic}.{unique}"

    await ensure_topics(
        bootstrap,
        [(n, PARTITIONS, False) for t in labelling.TOPICS for n in (name(t), dlq(name(t)))],
    )
    # eight accounts of one industry, spread over the four partitions
    ids = [f"W{i}-{unique}" for i in range(8)]
    assert len({partition_for(i, PARTITIONS) for i in ids}) > 1
    accounts = [
        Account(account_id=i, area="industry", name=i, region="east", district="d",
                industry_code="C2614", denominator_unit="10k_yuan", timezone="UTC")
        for i in ids
    ]  # fmt: skip
    bench = Benchmark(
        area="industry", industry_code="C26", region="*", period_start=_utc(2025, 1, 1),
        period_end=_utc(2026, 1, 1), value=10.0, unit="tCO2e/10k_yuan", source="t", version="v1",
    )  # fmt: skip
    apps = []
    for _ in range(2):
        app = create_app(settings, bootstrap, agents=[])
        labelling.register(app, settings, topic=name)
        apps.append(app)
    consumer = AIOKafkaConsumer(
        name("accounts.labels"), bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        for app in apps:
            await app.start()
        await produce(
            bootstrap, name("accounts.registry"), [(a.account_id, a, None) for a in accounts]
        )
        dens = [
            Denominator(account_id=i, period_start=_utc(2025, 1, 1), period_end=_utc(2026, 1, 1),
                        value=100.0, unit="10k_yuan")
            for i in ids
        ]  # fmt: skip
        await produce(
            bootstrap,
            name("accounts.denominators"),
            [(denominator_key(d), d, d.account_id) for d in dens],
        )
        await produce(bootstrap, name("benchmarks"), [(benchmark_key(bench), bench, None)])
        windows = [_window(i, 2025, m, 100.0) for i in ids for m in range(1, 13)]
        await produce(
            bootstrap, name("emissions.windows"), windows + [_window(i, 2026, 1, 1.0) for i in ids]
        )
        # every account: K = 1200 / 100 / 10 = 1.2, light green
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got += [json.loads(r.value) for r in records]
            if {x["account_id"] for x in got if x["new_colour"] == "light_green"} == set(ids):
                break
        assert {x["account_id"] for x in got if x["new_colour"] == "light_green"} == set(ids), got
        # both workers own some of the accounts' partitions, none twice
        owned = [
            {
                tp.partition
                for tp in app.consumer.assignment()
                if tp.topic == name("emissions.windows")
            }
            for app in apps
        ]
        assert all(owned) and not owned[0] & owned[1], owned
        # a benchmark revision to 20 (K 0.6, dark green): each account relabelled exactly once
        b2 = bench.derive(value=20.0, version="v2")
        await produce(bootstrap, name("benchmarks"), [(benchmark_key(b2), b2, None)])
        more: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(more) < len(ids):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                more += [json.loads(r.value) for r in records]
        for records in (await consumer.getmany(timeout_ms=2000)).values():  # any extra
            more += [json.loads(r.value) for r in records]
        assert sorted((x["account_id"], x["new_colour"], x["reason"]) for x in more) == [
            (i, "dark_green", "benchmark_change") for i in sorted(ids)
        ]
    finally:
        for app in apps:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(app.stop(), 30)
        await consumer.stop()
