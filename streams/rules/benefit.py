"""Carbon-benefit points, pure: per-behaviour reductions, points per gram, daily caps.

The table is data (`streams/data/benefit.yaml`, configurable with `benefit.table_file`):
each behaviour has a unit, the grams of CO2e one unit avoids (with its source), and a
daily cap of points in the person's local day. Points = grams × `points_per_gram`, cut so
a behaviour never earns more than its cap in one local day. Duplicates (same event_id)
count once: the caller keeps the ids of each day (`DayLedger`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from schemas.contracts import BenefitEvent, BenefitPoints
from schemas.errors import ContractError, ReasonCode

__all__ = [
    "Behaviour",
    "BenefitTable",
    "DayLedger",
    "check_event",
    "local_day",
    "score",
]


@dataclass(frozen=True)
class Behaviour:
    """One low-carbon behaviour: grams CO2e avoided per unit, and its daily cap in points."""

    name: str
    unit: str
    grams_per_unit: float
    daily_cap_points: float
    source: str = ""


@dataclass(frozen=True)
class BenefitTable:
    """The per-behaviour table and the points-per-gram rate."""

    behaviours: Mapping[str, Behaviour]
    points_per_gram: float

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> BenefitTable:
        """Build from `{points_per_gram: x, behaviours: {name: {unit, grams_per_unit,
        daily_cap_points, source}}}`; raises ValueError naming the bad entry."""
        try:
            ppg = float(data["points_per_gram"])
            raw = data["behaviours"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"benefit table needs points_per_gram and behaviours: {exc}") from None
        if not ppg > 0:
            raise ValueError("points_per_gram must be > 0")
        behaviours: dict[str, Behaviour] = {}
        for name, spec in raw.items():
            try:
                b = Behaviour(
                    name=str(name),
                    unit=str(spec["unit"]),
                    grams_per_unit=float(spec["grams_per_unit"]),
                    daily_cap_points=float(spec["daily_cap_points"]),
                    source=str(spec.get("source", "")),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"behaviours.{name}: {exc!r}") from None
            if b.grams_per_unit <= 0 or b.daily_cap_points <= 0:
                raise ValueError(f"behaviours.{name}: grams_per_unit and daily_cap_points > 0")
            behaviours[b.name] = b
        return cls(behaviours, ppg)


@dataclass
class DayLedger:
    """One person's local day: the event ids seen and the points earned per behaviour."""

    event_ids: set[str] = field(default_factory=set)
    points: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """JSON-able form (Faust table value)."""
        return {"ids": sorted(self.event_ids), "points": dict(self.points)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> DayLedger:
        """Inverse of `as_json`."""
        if not data:
            return cls()
        return cls(set(data.get("ids", ())), dict(data.get("points", {})))


def local_day(ts: datetime, timezone: str) -> str:
    """The local calendar day ("YYYY-MM-DD") of an instant."""
    return ts.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d")


def check_event(event: BenefitEvent, table: BenefitTable) -> Behaviour:
    """The event's behaviour, or ContractError (unknown_behaviour, unknown_unit, ...)."""
    b = table.behaviours.get(event.behaviour)
    if b is None:
        known = ", ".join(sorted(table.behaviours))
        raise ContractError(
            ReasonCode.UNKNOWN_BEHAVIOUR, f"{event.behaviour!r} is not one of {known}", "behaviour"
        )
    if event.unit != b.unit:
        raise ContractError(
            ReasonCode.UNKNOWN_UNIT, f"{event.behaviour} is counted in {b.unit}, not {event.unit}"
        )
    if not math.isfinite(event.quantity) or event.quantity <= 0:
        code = ReasonCode.NEGATIVE_VALUE if event.quantity < 0 else ReasonCode.OUT_OF_RANGE
        raise ContractError(code, f"quantity {event.quantity} must be > 0", "quantity")
    if not event.event_id or not event.account_id:
        raise ContractError(ReasonCode.MISSING_FIELD, "event_id and account_id may not be empty")
    return b


def score(event: BenefitEvent, table: BenefitTable, ledger: DayLedger) -> BenefitPoints | None:
    """The points of one event given the person's day so far; updates `ledger`.

    Returns None for a duplicate event_id (already counted). Raises ContractError for a
    bad event (unknown behaviour or unit, quantity not > 0).
    """
    b = check_event(event, table)
    if event.event_id in ledger.event_ids:
        return None
    reduction = event.quantity * b.grams_per_unit
    earned = reduction * table.points_per_gram
    used = ledger.points.get(b.name, 0.0)
    points = max(0.0, min(earned, b.daily_cap_points - used))
    ledger.event_ids.add(event.event_id)
    ledger.points[b.name] = used + points
    return BenefitPoints(
        event_id=event.event_id,
        account_id=event.account_id,
        behaviour=b.name,
        quantity=event.quantity,
        unit=event.unit,
        reduction_g=reduction,
        points=round(points, 6),
        capped=points < earned,
        ts=event.ts,
        district=event.district,
    )
