"""The event contracts of ARCHITECTURE.md as Faust Records.

A Record's annotations are the single source of truth: its Arrow schema
(`schemas.codec.arrow_schema`) and JSON Schema (`schemas.jsonschema`) are derived
from them, and `schemas.codec.decode` validates against them. Closed sets of
strings are declared in a record's `enums` class attribute.

Times are timezone-aware `datetime`s in UTC.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

import faust

from schemas.errors import ContractError, ReasonCode
from schemas.units import EnergyType, conversion_factor

__all__ = [
    "Account",
    "AccountLabel",
    "Area",
    "Benchmark",
    "BenefitEvent",
    "BenefitPoints",
    "Colour",
    "Contract",
    "Denominator",
    "EmissionFactor",
    "EmissionWindow",
    "EnergyInterval",
    "Kind",
    "Quality",
    "Reading",
]


class Kind(StrEnum):
    CUMULATIVE = "cumulative"  # a counter: consumption is the difference of two readings
    INTERVAL = "interval"  # the reading carries its own consumption over [period_start, ts)


class Quality(StrEnum):
    GOOD = "good"
    UNCERTAIN = "uncertain"  # used, and flagged on what it produces
    BAD = "bad"  # not used: goes to the DLQ with reason bad_quality


class Colour(StrEnum):
    DARK_GREEN = "dark_green"
    LIGHT_GREEN = "light_green"
    YELLOW = "yellow"
    RED = "red"


class Area(StrEnum):
    """The six areas of Quzhou's carbon accounts."""

    INDUSTRY = "industry"
    ENERGY = "energy"
    CONSTRUCTION = "construction"
    TRANSPORTATION = "transportation"
    AGRICULTURE_FORESTRY = "agriculture_forestry"
    DAILY_LIFE = "daily_life"


class Contract(
    faust.Record, abstract=True, serializer="json", isodates=True, include_metadata=False
):
    """Base of every contract: JSON on the wire, ISO 8601 times."""

    enums: ClassVar[dict[str, type[StrEnum]]] = {}
    topic: ClassVar[str | None] = None

    def check(self) -> None:
        """Rules across fields, beyond types and enums; raise ContractError. Default: none."""


class Reading(Contract):
    """One meter reading, as devices, collectors and replay files carry it."""

    meter_id: str
    account_id: str
    energy_type: str
    kind: str
    value: float
    unit: str
    ts: datetime  # device time
    quality: str
    source: str
    seq: int  # per-meter sequence number from the collector
    counter_max: float | None = None  # the value after which a cumulative counter rolls over to 0
    period_start: datetime | None = None  # kind=interval: start of the period the value covers

    enums: ClassVar[dict[str, type[StrEnum]]] = {
        "energy_type": EnergyType,
        "kind": Kind,
        "quality": Quality,
    }
    topic: ClassVar[str | None] = "meter.readings"

    def check(self) -> None:
        if self.value < 0:
            raise ContractError(ReasonCode.NEGATIVE_VALUE, f"value {self.value} < 0", "value")
        if self.counter_max is not None and not 0 < self.counter_max < math.inf:
            raise ContractError(ReasonCode.OUT_OF_RANGE, "counter_max must be > 0", "counter_max")
        conversion_factor(self.energy_type, self.unit)  # raises unknown_unit
        if self.kind == Kind.INTERVAL:
            if self.period_start is None:
                raise ContractError(
                    ReasonCode.MISSING_FIELD,
                    "an interval reading needs period_start",
                    "period_start",
                )
            if self.period_start >= self.ts:
                raise ContractError(
                    ReasonCode.BAD_TIME, "period_start is not before ts", "period_start"
                )


class EnergyInterval(Contract):
    """One meter's consumption over [start, end), in the energy type's canonical unit."""

    meter_id: str
    account_id: str
    energy_type: str
    start: datetime
    end: datetime
    consumption: float
    unit: str
    uncertain: bool  # an uncertain-quality reading went into it
    event: str  # "", "rollover" or "reset"
    source_seqs: list[int]  # the `seq` of the readings it came from

    enums: ClassVar[dict[str, type[StrEnum]]] = {"energy_type": EnergyType}
    topic: ClassVar[str | None] = "energy.intervals"


class EmissionWindow(Contract):
    """An account's emissions of one energy type over one 15-minute window."""

    account_id: str
    energy_type: str
    window_start: datetime
    window_end: datetime
    consumption: float
    unit: str
    tco2e: float
    factor_id: str
    factor_version: str
    factor_value: float
    factor_unit: str
    revision: int  # grows each time late data or a factor revision changes the window
    uncertain: bool = False

    enums: ClassVar[dict[str, type[StrEnum]]] = {"energy_type": EnergyType}
    topic: ClassVar[str | None] = "emissions.windows"


class AccountLabel(Contract):
    """An account's colour changed (or was first given, or was withdrawn)."""

    account_id: str
    area: str
    industry_code: str
    region: str
    old_colour: str | None
    new_colour: str | None  # None: withdrawn, see reason (no_benchmark, no_denominator)
    k: float | None  # intensity / benchmark
    intensity: float | None
    benchmark: float | None
    benchmark_version: str | None
    period_start: datetime
    period_end: datetime
    reason: str
    revision: int
    ts: datetime  # when the label was evaluated

    enums: ClassVar[dict[str, type[StrEnum]]] = {
        "area": Area,
        "old_colour": Colour,
        "new_colour": Colour,
    }
    topic: ClassVar[str | None] = "accounts.labels"


class Account(Contract):
    """An account in the registry (compacted topic `accounts.registry`, keyed by account_id)."""

    account_id: str
    area: str
    name: str
    region: str  # grid/administrative region, e.g. "east_china"
    district: str
    industry_code: str  # GB/T 4754; "" for residents
    denominator_unit: str  # what intensity is divided by: "10k_yuan", "MWh", "m2", ...
    timezone: str = "Asia/Shanghai"

    enums: ClassVar[dict[str, type[StrEnum]]] = {"area": Area}
    topic: ClassVar[str | None] = "accounts.registry"


class Denominator(Contract):
    """An account's intensity denominator over a period (compacted, keyed account_id/period)."""

    account_id: str
    period_start: datetime
    period_end: datetime
    value: float
    unit: str

    topic: ClassVar[str | None] = "accounts.denominators"


class Benchmark(Contract):
    """An industry's benchmark intensity over a period (compacted topic `benchmarks`)."""

    area: str
    industry_code: str
    region: str
    period_start: datetime
    period_end: datetime
    value: float  # tCO2e per denominator unit
    unit: str
    source: str
    version: str

    enums: ClassVar[dict[str, type[StrEnum]]] = {"area": Area}
    topic: ClassVar[str | None] = "benchmarks"


class EmissionFactor(Contract):
    """An emission factor, with its source, version and effective period (topic `factors`)."""

    factor_id: str
    energy_type: str
    region: str
    value: float
    unit: str  # e.g. "tCO2e/kWh"
    effective_from: datetime
    effective_to: datetime | None
    source: str
    version: str

    enums: ClassVar[dict[str, type[StrEnum]]] = {"energy_type": EnergyType}
    topic: ClassVar[str | None] = "factors"


class BenefitEvent(Contract):
    """A resident's low-carbon behaviour."""

    event_id: str
    account_id: str  # the person
    behaviour: str  # bus_trip, subway_km, cycling_km, walking_steps, e_bill, second_hand_trade, ...
    quantity: float
    unit: str
    ts: datetime
    district: str = ""

    topic: ClassVar[str | None] = "benefit.events"


class BenefitPoints(Contract):
    """The points one benefit event earned, after daily caps."""

    event_id: str
    account_id: str
    behaviour: str
    quantity: float
    unit: str
    reduction_g: float  # grams CO2e avoided
    points: float
    capped: bool  # the daily cap cut this event's points
    ts: datetime
    district: str = ""

    topic: ClassVar[str | None] = "benefit.points"
