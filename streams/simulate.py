"""A behaviour-event simulator for the demo: thousands of residents going about their days.

Deterministic for a seed. Each resident has a habit (bus rider, subway commuter, cyclist,
walker) that weights the behaviours; a small share of events is sent twice (duplicates,
counted once) and a smaller share is broken (to show the DLQ at work).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas.contracts import Account, Benchmark, Denominator, EmissionWindow
from streams.registry import benchmark_value, denominator_value
from streams.rules.labelling import (
    benchmark_for,
    denominator_over,
    local_month,
    month_add,
    month_start_utc,
)

__all__ = [
    "DEMO_TARGETS",
    "DISTRICTS",
    "benefit_events",
    "history_windows",
    "send_benefit_events",
]

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
    clock: Callable[[], datetime] | None = None,
) -> Iterator[dict[str, Any]]:
    """`events` benefit events (JSON-able dicts, as `benefit.events` carries them) of
    `residents` people over `hours` from `start` (default: the last `hours` until now);
    with `clock`, each event happens at `clock()` instead (a live feed).

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
        ts = clock() if clock else start + timedelta(seconds=rng.uniform(0, hours * 3600))
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


#: the demo's sample accounts (streams/data/accounts.yaml): (K over the last 12 closed
#: months, K the 12 months before). *default* our own, chosen to show every colour, the
#: lift (CON-0002 down 11%, AGR-0001 down 10% past its 8%) and a carbon sink.
DEMO_TARGETS: dict[str, tuple[float, float]] = {
    "IND-0001": (0.70, 0.71),
    "IND-0002": (1.00, 1.01),
    "IND-0003": (1.50, 1.52),
    "IND-0004": (2.60, 2.55),
    "ENE-0001": (0.95, 0.96),
    "CON-0001": (1.10, 1.12),
    "CON-0002": (1.60, 1.80),
    "TRA-0001": (0.90, 0.90),
    "TRA-0002": (2.20, 2.30),
    "AGR-0001": (1.30, 1.45),
    "FOR-0001": (-0.50, -0.50),
}

_GRID = 0.00055  # tCO2e/kWh: East China grid 2023, 0.5500 kg/kWh (shared/domain/README.md)


def history_windows(
    accounts: list[Account],
    denominators: list[Denominator],
    benchmarks: list[Benchmark],
    now: datetime,
    targets: dict[str, tuple[float, float]] | None = None,
) -> list[EmissionWindow]:
    """Two years of demo history for the sample accounts: one window per closed local month
    carrying that month's emissions (factor_id `demo-history`), sized so each account's K
    is its target, and one small window in the current month that closes the last one.

    For the demo only: real windows come from the accounting agent, 96 a day.
    """
    targets = DEMO_TARGETS if targets is None else targets
    benches = [benchmark_value(b) for b in benchmarks]
    out: list[EmissionWindow] = []
    for a in accounts:
        if a.account_id not in targets:
            continue
        k_now, k_before = targets[a.account_id]
        current = local_month(now, a.timezone)
        dens = [denominator_value(d) for d in denominators if d.account_id == a.account_id]
        for back in range(24, -1, -1):
            month = month_add(current, -back)
            start = month_start_utc(month, a.timezone)
            end = month_start_utc(month_add(month, 1), a.timezone)
            bench = benchmark_for(benches, a.area, a.industry_code, a.region, start, end)
            denominator = denominator_over(dens, start, end)
            if bench is None or denominator is None:
                continue
            k = k_now if back <= 12 else k_before
            tco2e = k * bench.value * denominator if back else 0.001
            at = start + (end - start) / 2 if back else start
            sink = tco2e < 0
            out.append(
                EmissionWindow(
                    account_id=a.account_id,
                    energy_type="carbon_sink" if sink else "electricity",
                    window_start=at,
                    window_end=at + timedelta(minutes=15),
                    consumption=-tco2e if sink else tco2e / _GRID,
                    unit="tCO2e" if sink else "kWh",
                    tco2e=tco2e,
                    factor_id="demo-history",
                    factor_version="2023",
                    factor_value=-1.0 if sink else _GRID,
                    factor_unit="tCO2e/tCO2e" if sink else "tCO2e/kWh",
                    revision=0,
                )
            )
    return out
