"""End to end: simulated benefit events through the real broker and a Faust worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer

from infra.broker import ensure_topics
from schemas.settings import Settings
from schemas.topics import dlq
from streams.agents import benefit
from streams.app import create_app
from streams.registry import load_benefit_table
from streams.rules.benefit import local_day
from streams.simulate import benefit_events, send_benefit_events


async def _drain(consumer: AIOKafkaConsumer, want: int, timeout: float) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            out += records
    return out


async def test_simulated_events_to_points(bootstrap: str, settings: Settings, unique: str) -> None:
    settings.kafka.partitions = 2
    settings.streams.app_id = f"benefit-e2e-{unique}"
    settings.data_path.mkdir(parents=True, exist_ok=True)

    def name(topic: str) -> str:
        return f"{topic}.{unique}"

    await ensure_topics(
        bootstrap, [(n, 2, False) for t in benefit.TOPICS for n in (name(t), dlq(name(t)))]
    )
    events = list(
        benefit_events(
            20, 300, seed=7, start=datetime(2026, 3, 1, tzinfo=UTC), duplicates=0.05, bad=0.03
        )
    )
    table = load_benefit_table(settings)
    # expected, from the events themselves: a good event has a known behaviour, its unit, a
    # quantity > 0 and a time; each good event_id earns points once; the rest go to the DLQ
    good_ids = {
        e["event_id"]
        for e in events
        if e["behaviour"] in table.behaviours
        and e["unit"] == table.behaviours[e["behaviour"]].unit
        and e["quantity"] > 0
        and "ts" in e
    }
    bad = sum(1 for e in events if e["event_id"] not in good_ids)
    assert bad > 0 and len(good_ids) < len(events) - bad  # there are bad ones and duplicates

    app = create_app(settings, bootstrap, agents=[])
    benefit.register(app, settings, topic=name)
    points_c = AIOKafkaConsumer(
        name("benefit.points"), bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    dlq_c = AIOKafkaConsumer(
        dlq(name("benefit.events")), bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await points_c.start()
    await dlq_c.start()
    await app.start()
    try:
        await send_benefit_events(bootstrap, name("benefit.events"), iter(events))
        points = [json.loads(r.value) for r in await _drain(points_c, len(good_ids), 90)]
        rejected = await _drain(dlq_c, bad, 30)
        assert sorted(p["event_id"] for p in points) == sorted(good_ids)  # each once
        assert len(rejected) == bad
        reasons = Counter(dict(r.headers)["reason"].decode() for r in rejected)
        assert set(reasons) <= {"unknown_behaviour", "negative_value", "unknown_unit",
                                "missing_field"}  # fmt: skip
        # caps hold per person, local day and behaviour
        per_day: Counter[tuple[str, str, str]] = Counter()
        for p in points:
            ts = datetime.fromisoformat(p["ts"].replace("Z", "+00:00"))
            per_day[(p["account_id"], local_day(ts, "Asia/Shanghai"), p["behaviour"])] += p[
                "points"
            ]
        for (_, _, behaviour), total in per_day.items():
            assert total <= table.behaviours[behaviour].daily_cap_points + 1e-6
        assert any(p["capped"] for p in points)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(app.stop(), 30)
        await points_c.stop()
        await dlq_c.stop()
