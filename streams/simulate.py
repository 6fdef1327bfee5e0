"""A behaviour-event simulator for the demo: thousands of residents going about their days.

Deterministic for a seed. Each resident has a habit (bus rider, subway commuter, cyclist,
walker) that weights the behaviours; a small share of events is sent twice (duplicates,
counted once) and a smaller share is broken (to show the DLQ at work).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

__all__ = ["DISTRICTS", "benefit_events", "send_benefit_events"]

#: the districts and counties of Quzhou
DISTRICTS = ("Kecheng", "Qujiang", "Longyou", "Jiangshan", "Changshan", "Kaihua")

# behaviour: (unit, quantity range, integer quantity)
_BEHAVIOURS: dict[str, tuple[str, tuple[float, float], bool]] = {
    "bus_trip": ("trip", (1, 1), True),
    "subway_km": ("km", (2, 25), False),
    "cycling_km": ("km", (0.5, 12), False),
    "walking_steps": ("steps", (1500, 14000), True),
    "e_bill": ("bill", (1, 1), True),
    "second_hand_trade": ("trade", (1, 1), True),
}
_HABITS: tuple[dict[str, float], ...] = (
    {"bus_trip": 6, "walking_steps": 3, "e_bill": 1},
    {"subway_km": 6, "walking_steps": 2, "e_bill": 1, "second_hand_trade": 0.3},
    {"cycling_km": 6, "bus_trip": 2, "walking_steps": 1},
    {"walking_steps": 6, "bus_trip": 2, "second_hand_trade": 0.5, "e_bill": 1},
)


def _broken(event: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(4)
    if kind == 0:
        return event | {"behaviour": "teleporting"}  # unknown_behaviour
    if kind == 1:
        return event | {"quantity": -event["quantity"]}  # negative_value
    if kind == 2:
        return event | {"unit": "miles"}  # unknown_unit
    return {k: v for k, v in event.items() if k != "ts"}  # missing_field


def benefit_events(
    residents: int,
    events: int,
    *,
    seed: int = 1,
    start: datetime | None = None,
    hours: float = 24.0,
    duplicates: float = 0.01,
    bad: float = 0.002,
) -> Iterator[dict[str, Any]]:
    """`events` benefit events (JSON-able dicts, as `benefit.events` carries them) of
    `residents` people over `hours` from `start` (default: the last `hours` until now).

    A share `duplicates` of the events is repeated (same event_id) and a share `bad` is
    broken; both come on top of `events`.
    """
    rng = random.Random(seed)
    start = start or datetime.now(UTC) - timedelta(hours=hours)
    people = [
        (f"RES-{i:07d}", rng.choice(_HABITS), rng.choice(DISTRICTS))
        for i in range(1, residents + 1)
    ]
    for n in range(events):
        account_id, habit, district = rng.choice(people)
        behaviour = rng.choices(list(habit), weights=list(habit.values()))[0]
        unit, (lo, hi), integer = _BEHAVIOURS[behaviour]
        quantity = (
            float(rng.randint(int(lo), int(hi))) if integer else round(rng.uniform(lo, hi), 2)
        )
        ts = start + timedelta(seconds=rng.uniform(0, hours * 3600))
        event = {
            "event_id": f"sim-{seed}-{n}",
            "account_id": account_id,
            "behaviour": behaviour,
            "quantity": quantity,
            "unit": unit,
            "ts": ts.isoformat(),
            "district": district,
        }
        yield event
        if rng.random() < duplicates:
            yield event
        if rng.random() < bad:
            yield _broken(event | {"event_id": f"sim-{seed}-{n}-bad"}, rng)


async def send_benefit_events(
    bootstrap: str,
    topic: str,
    events: Iterator[dict[str, Any]],
    *,
    rate: float | None = None,
    stop: asyncio.Event | None = None,
    **options: Any,
) -> int:
    """Produce events to `topic` keyed by account_id; `rate`: events per second (None: as
    fast as possible). Stops early when `stop` is set. Returns the count sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, **options)
    await producer.start()
    sent = 0
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        for event in events:
            if stop is not None and stop.is_set():
                break
            await producer.send(
                topic,
                value=json.dumps(event).encode(),
                key=event["account_id"].encode(),
                headers=[("content-type", b"application/json")],
            )
            sent += 1
            if rate:
                ahead = began + sent / rate - loop.time()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
        return sent
    finally:
        await producer.stop()
