"""Emission factors as data: the shipped files, the fuel computation, and the lookup.

`schemas/data/factors.csv` holds factors as published (grid electricity by year and
grid region, purchased heat and steam, carbon sinks), each with its source, version and
effective period. `schemas/data/fuels.csv` holds the GB/T 32150-2015 default fuel
parameters; each fuel's factor is computed here as

    tCO2 per unit = NCV [GJ/unit] × 1e-3 [TJ/GJ] × carbon content [tC/TJ]
                    × oxidation rate × 44/12 [tCO2/tC]

and checked against the published CO2 factor column (`fuel_factor_check`).

Every factor's value is stored per canonical unit of its energy type
(`schemas.units`), in tCO2e: e.g. the 2023 national grid average 0.5306 kgCO2/kWh is
`0.0005306 tCO2e/kWh`, so `tco2e = consumption × value`.

Factor regions: electricity factors belong to a grid region (`national`,
`national_excl_nonfossil`, `national_fossil`, `east_china`); other factors to `*`
(everywhere). Which grid region an account uses is a setting
(`streams.grid_factor_regions`). Within a region, the factor for a time t is the one
with the latest `effective_from` ≤ t whose `effective_to` is open or > t (a year's
grid factor applies until a later year is published); before the first published
period, the first one. Of one `factor_id`, the highest `version` wins: a revision is a
new version.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import datetime
from importlib.resources import files
from typing import Any

from schemas.contracts import EmissionFactor
from schemas.units import canonical_unit

__all__ = [
    "FactorBook",
    "fuel_co2_factor",
    "fuel_factor_check",
    "load_factors",
    "version_key",
]

_CO2_PER_C = 44.0 / 12.0
# published units → divisor into tCO2e per canonical unit (dividing keeps 0.5366/1000 exact)
_UNIT_DIVISOR = {"kgCO2/kWh": 1000.0, "tCO2/MWh": 1000.0, "tCO2/GJ": 1.0, "tCO2e/tCO2e": 1.0}


def fuel_co2_factor(ncv_kj: float, carbon_tc_per_tj: float, oxidation: float) -> float:
    """CO2 factor in kg per kg (NCV in kJ/kg) or kg per m3 (NCV in kJ/m3).

    NCV kJ/kg = GJ/t; × 1e-3 → TJ/t; × tC/TJ × oxidation × 44/12 → tCO2/t (= kg/kg).
    Likewise kJ/m3 gives tCO2 per 1000 m3 (= kg/m3).
    """
    return ncv_kj * 1e-3 * 1e-3 * carbon_tc_per_tj * oxidation * _CO2_PER_C


def _time(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _rows(name: str) -> list[dict[str, str]]:
    text = files("schemas").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def fuel_factor_check() -> list[tuple[str, float, float]]:
    """(energy type, computed kgCO2/unit, published kgCO2/unit) for every shipped fuel."""
    out = []
    for row in _rows("fuels.csv"):
        computed = fuel_co2_factor(
            float(row["ncv"]), float(row["carbon_content_tc_per_tj"]), float(row["oxidation"])
        )
        out.append((row["energy_type"], computed, float(row["published_co2_factor"])))
    return out


def _fuel_source(row: dict[str, str]) -> str:
    computation = " x ".join(
        (
            f"NCV {row['ncv']} {row['ncv_unit']}",
            f"{row['carbon_content_tc_per_tj']} tC/TJ",
            f"oxidation {row['oxidation']}",
            "44/12",
        )
    )
    return f"computed: {computation}; {row['source']}"


def load_factors() -> list[EmissionFactor]:
    """Every shipped factor, values in tCO2e per canonical unit of its energy type."""
    out: list[EmissionFactor] = []
    for row in _rows("factors.csv"):
        et = row["energy_type"]
        out.append(
            EmissionFactor(
                factor_id=row["factor_id"],
                energy_type=et,
                region=row["region"],
                value=float(row["value"]) / _UNIT_DIVISOR[row["unit"]],
                unit=f"tCO2e/{canonical_unit(et)}",
                effective_from=_time(row["effective_from"]),
                effective_to=_time(row["effective_to"]),
                source=row["source"],
                version=row["version"],
            )
        )
    for row in _rows("fuels.csv"):
        et = row["energy_type"]
        # per kg (or m3) → per canonical unit: t of fuel (× 1000 kg/t), Nm3 of gas (× 1)
        per_unit = fuel_co2_factor(
            float(row["ncv"]), float(row["carbon_content_tc_per_tj"]), float(row["oxidation"])
        )
        value = per_unit / (1000.0 if row["ncv_unit"] == "kJ/m3" else 1.0)
        out.append(
            EmissionFactor(
                factor_id=f"fuel-{et.replace('_', '-')}",
                energy_type=et,
                region="*",
                value=value,
                unit=f"tCO2e/{canonical_unit(et)}",
                effective_from=_time(row["effective_from"]),
                effective_to=None,
                source=_fuel_source(row),
                version=row["version"],
            )
        )
    return out


def version_key(version: str) -> tuple[int, Any]:
    """Order versions: numbers numerically, then other strings lexically."""
    try:
        return (0, float(version))
    except ValueError:
        return (1, version)


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else int(dt.timestamp() * 1000)


class FactorBook:
    """The factors in force: the newest version of each factor_id, looked up by time.

    `lookup` returns `(factor_id, version, value, unit)` or None. A `generation`
    counter grows with every change, so holders of computed results can tell they
    are stale.
    """

    def __init__(self, factors: Iterable[EmissionFactor] = ()) -> None:
        self._by_id: dict[str, EmissionFactor] = {}
        # (energy_type, region) → [(from_ms, to_ms, (id, version, value, unit))] by from_ms
        self._index: dict[tuple[str, str], list[tuple[int, int | None, tuple[Any, ...]]]] = {}
        self._cache: dict[tuple[str, str, int], tuple[Any, ...] | None] = {}
        self.generation = 0
        for factor in factors:
            self.add(factor)

    def __len__(self) -> int:
        return len(self._by_id)

    def factors(self) -> list[EmissionFactor]:
        """The factors in force (newest version of each id)."""
        return list(self._by_id.values())

    def add(self, factor: EmissionFactor) -> bool:
        """Take a factor (a new one or a new version); False when it changes nothing."""
        known = self._by_id.get(factor.factor_id)
        if known is not None:
            if version_key(factor.version) < version_key(known.version):
                return False
            if known == factor:
                return False
        self._by_id[factor.factor_id] = factor
        self._rebuild()
        return True

    def _rebuild(self) -> None:
        index: dict[tuple[str, str], list[tuple[int, int | None, tuple[Any, ...]]]] = {}
        for f in self._by_id.values():
            entry = (f.factor_id, f.version, f.value, f.unit)
            start = _ms(f.effective_from)
            index.setdefault((f.energy_type, f.region), []).append(
                (start if start is not None else -(2**62), _ms(f.effective_to), entry)
            )
        for entries in index.values():
            entries.sort(key=lambda e: e[0])
        self._index = index
        self._cache = {}
        self.generation += 1

    def lookup(self, energy_type: str, region: str, ts_ms: int) -> tuple[Any, ...] | None:
        """The factor for an energy type in a factor region at a time (region, then `*`)."""
        key = (energy_type, region, ts_ms)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = self._find(energy_type, region, ts_ms)
        if found is None and region != "*":
            found = self._find(energy_type, "*", ts_ms)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _find(self, energy_type: str, region: str, ts_ms: int) -> tuple[Any, ...] | None:
        entries = self._index.get((energy_type, region))
        if not entries:
            return None
        best = None
        for start, end, entry in entries:
            if start <= ts_ms and (end is None or ts_ms < end):
                best = entry  # sorted by start: the last match has the latest start
        if best is None and ts_ms < entries[0][0]:
            best = entries[0][2]  # before the first published period: the first one
        return best
