"""What-if: how many accounts would change colour if a proposed benchmark table were adopted.

Reads ClickHouse (emissions_15m, accounts, denominators, benchmarks, account_labels, all
FINAL: the latest version of each row; the SQL is in `sinks/sql/whatif/*.sql`),
and evaluates every labelled account twice with the live rule (`streams.rules.labelling`):

- baseline: the benchmarks in force, as a first evaluation;
- proposed: the benchmarks in force overlaid by the proposal (a proposed row replaces the
  row of the same area, industry code, region and period start; `replace=True` drops
  every row in force), with the baseline as the previous label, exactly as the labelling
  agent would react to the proposal arriving on `benchmarks` (hysteresis included).

Nothing is written: live labels are untouched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from schemas.contracts import Benchmark
from schemas.settings import Settings
from sinks.store import Store
from streams.registry import benchmark_key, benchmark_value
from streams.rules.labelling import (
    COLOURS,
    BenchmarkValue,
    DenominatorValue,
    Evaluation,
    LabelState,
    RuleBook,
    evaluate,
)

__all__ = ["AccountChange", "IndustryChanges", "WhatIf", "compare", "industry_of", "whatif"]


def _sql(name: str) -> str:
    return files("sinks").joinpath("sql", "whatif", f"{name}.sql").read_text()


def industry_of(code: str) -> str:
    """The GB/T 4754 division of an industry code (section letter + 2 digits: C2614 -> C26)."""
    return code[:3] if code[:1].isalpha() else code[:2]


@dataclass(frozen=True)
class AccountChange:
    """One account's colour under the benchmarks in force and under the proposal."""

    account_id: str
    area: str
    industry_code: str
    live: str | None  # its latest label in account_labels (None: never labelled)
    current: str | None
    proposed: str | None
    current_k: float | None
    proposed_k: float | None

    @property
    def changed(self) -> bool:
        """The proposal changes its colour."""
        return self.current != self.proposed

    @property
    def direction(self) -> str:
        """better, worse, gains (no colour -> colour), loses (colour -> none) or same."""
        if not self.changed:
            return "same"
        if self.current is None:
            return "gains"
        if self.proposed is None:
            return "loses"
        rank = [c.value for c in COLOURS]
        return "better" if rank.index(self.proposed) < rank.index(self.current) else "worse"


@dataclass
class IndustryChanges:
    """Counts of one area and industry division."""

    area: str
    industry: str
    accounts: int = 0
    changed: int = 0
    directions: Counter[str] = field(default_factory=Counter)


@dataclass
class WhatIf:
    """The result: every account's change and the counts per industry."""

    changes: list[AccountChange]
    industries: list[IndustryChanges]

    @property
    def changed(self) -> int:
        """Accounts whose colour the proposal changes."""
        return sum(1 for c in self.changes if c.changed)

    def as_json(self) -> dict[str, Any]:
        """JSON-able summary (per industry) and the changed accounts."""
        return {
            "accounts": len(self.changes),
            "changed": self.changed,
            "industries": [
                {
                    "area": i.area,
                    "industry": i.industry,
                    "accounts": i.accounts,
                    "changed": i.changed,
                    **{d: i.directions.get(d, 0) for d in ("better", "worse", "gains", "loses")},
                }
                for i in self.industries
            ],
            "changed_accounts": [
                {
                    "account_id": c.account_id,
                    "industry_code": c.industry_code,
                    "current": c.current,
                    "proposed": c.proposed,
                    "current_k": c.current_k,
                    "proposed_k": c.proposed_k,
                    "live": c.live,
                }
                for c in self.changes
                if c.changed
            ],
        }


def compare(
    *,
    accounts: Iterable[Mapping[str, Any]],
    monthly: Mapping[str, Mapping[str, float]],
    denominators: Mapping[str, list[DenominatorValue]],
    current: Iterable[Benchmark],
    proposed: Iterable[Benchmark],
    rules: RuleBook,
    live: Mapping[str, str | None] | None = None,
    replace: bool = False,
) -> WhatIf:
    """Evaluate each account under the benchmarks in force and under the proposal (no I/O).

    `accounts`: rows with account_id, area, industry_code, region, timezone; `monthly`:
    tCO2e per account and local month; an account without emissions is not evaluated.
    """
    in_force = {benchmark_key(b): b for b in current}
    adopted = {} if replace else dict(in_force)
    adopted.update({benchmark_key(b): b for b in proposed})
    now_values = [benchmark_value(b) for b in in_force.values()]
    new_values = [benchmark_value(b) for b in adopted.values()]
    live = live or {}
    changes: list[AccountChange] = []
    groups: dict[tuple[str, str], IndustryChanges] = {}
    for a in accounts:
        months = monthly.get(a["account_id"])
        if not months:
            continue
        before = _evaluate(a, months, denominators.get(a["account_id"], []), now_values, rules)
        previous = LabelState(before.colour, before.band, before.lifted, 1)
        after = _evaluate(
            a, months, denominators.get(a["account_id"], []), new_values, rules, previous
        )
        change = AccountChange(
            a["account_id"],
            a["area"],
            a["industry_code"],
            live.get(a["account_id"]),
            before.colour.value if before.colour else None,
            after.colour.value if after.colour else None,
            before.k,
            after.k,
        )
        changes.append(change)
        key = (a["area"], industry_of(a["industry_code"]))
        group = groups.setdefault(key, IndustryChanges(*key))
        group.accounts += 1
        group.changed += change.changed
        group.directions[change.direction] += 1
    return WhatIf(changes, [groups[k] for k in sorted(groups)])


def _evaluate(
    a: Mapping[str, Any],
    months: Mapping[str, float],
    denominators: list[DenominatorValue],
    benchmarks: list[BenchmarkValue],
    rules: RuleBook,
    previous: LabelState | None = None,
) -> Evaluation:
    return evaluate(
        monthly_tco2e=months,
        latest_month=max(months),
        timezone=a["timezone"],
        area=a["area"],
        industry_code=a["industry_code"],
        region=a["region"],
        denominators=denominators,
        benchmarks=benchmarks,
        rule=rules.rule_for(a["area"], a["industry_code"]),
        previous=previous,
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _rows(store: Store, name: str, parameters: dict[str, Any] | None = None) -> list[dict]:
    result = store.query(_sql(name), parameters=parameters)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def whatif(
    store: Store,
    settings: Settings,
    proposed: Iterable[Benchmark],
    rules: RuleBook,
    *,
    replace: bool = False,
    since: datetime | None = None,
) -> WhatIf:
    """Read ClickHouse and compare the benchmarks in force with `proposed` (nothing written).

    `since`: read emissions from this instant on (default: everything).
    """
    tz = settings.streams.timezone
    params = {"timezone": tz, "since": since or datetime(1970, 1, 1, tzinfo=UTC)}
    monthly: dict[str, dict[str, float]] = {}
    for r in _rows(store, "monthly_emissions", params):
        monthly.setdefault(r["account_id"], {})[r["month"]] = float(r["tco2e"])
    accounts = [r | {"timezone": tz} for r in _rows(store, "accounts")]
    denominators: dict[str, list[DenominatorValue]] = {}
    for r in _rows(store, "denominators"):
        denominators.setdefault(r["account_id"], []).append(
            DenominatorValue(_utc(r["period_start"]), _utc(r["period_end"]), float(r["value"]))
        )
    current = [
        Benchmark(
            **(r | {"period_start": _utc(r["period_start"]), "period_end": _utc(r["period_end"])})
        )
        for r in _rows(store, "benchmarks")
    ]
    live = {r["account_id"]: r["colour"] for r in _rows(store, "live_labels")}
    return compare(
        accounts=accounts,
        monthly=monthly,
        denominators=denominators,
        current=current,
        proposed=list(proposed),
        rules=rules,
        live=live,
        replace=replace,
    )
