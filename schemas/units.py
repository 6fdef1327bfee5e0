"""Energy types, their canonical units and the conversions into them.

Canonical units (one per energy type) are what `energy.intervals` and
`emissions.windows` carry: electricity kWh, natural gas Nm3, heat and steam GJ,
coal and coke t, liquid fuels t, carbon sinks tCO2e.

Litres of liquid fuel convert with densities from GB/T 2589-2020 appendix A (the
same values the GB/T 32150 guides use): diesel 0.84 kg/L, gasoline 0.74 kg/L,
LPG 0.54 kg/L. Volumes of natural gas are taken as already at normal conditions
(0 °C, 101.325 kPa): `m3` and `Nm3` are the same unit here; correct at the meter.
"""

from __future__ import annotations

from enum import StrEnum

from schemas.errors import ContractError, ReasonCode

__all__ = ["CANONICAL_UNIT", "EnergyType", "canonical_unit", "conversion_factor"]


class EnergyType(StrEnum):
    ELECTRICITY = "electricity"
    NATURAL_GAS = "natural_gas"
    HEAT = "heat"
    STEAM = "steam"
    RAW_COAL = "raw_coal"
    COKE = "coke"
    DIESEL = "diesel"
    GASOLINE = "gasoline"
    LPG = "lpg"
    CARBON_SINK = "carbon_sink"  # forestry: tonnes sequestered, accounted as negative emissions


CANONICAL_UNIT: dict[EnergyType, str] = {
    EnergyType.ELECTRICITY: "kWh",
    EnergyType.NATURAL_GAS: "Nm3",
    EnergyType.HEAT: "GJ",
    EnergyType.STEAM: "GJ",
    EnergyType.RAW_COAL: "t",
    EnergyType.COKE: "t",
    EnergyType.DIESEL: "t",
    EnergyType.GASOLINE: "t",
    EnergyType.LPG: "t",
    EnergyType.CARBON_SINK: "tCO2e",
}

_MASS = {"t": 1.0, "kg": 1e-3}
_HEAT = {"GJ": 1.0, "MJ": 1e-3, "TJ": 1e3, "MWh": 3.6, "kWh": 3.6e-3}
_DENSITY_T_PER_L = {
    EnergyType.DIESEL: 0.84e-3,
    EnergyType.GASOLINE: 0.74e-3,
    EnergyType.LPG: 0.54e-3,
}

# multiplier from a unit into the canonical unit of each energy type
_FACTORS: dict[EnergyType, dict[str, float]] = {
    EnergyType.ELECTRICITY: {"kWh": 1.0, "Wh": 1e-3, "MWh": 1e3, "GWh": 1e6},
    EnergyType.NATURAL_GAS: {"Nm3": 1.0, "m3": 1.0, "kNm3": 1e3, "10^4Nm3": 1e4},
    EnergyType.HEAT: _HEAT,
    EnergyType.STEAM: _HEAT,
    EnergyType.RAW_COAL: _MASS,
    EnergyType.COKE: _MASS,
    EnergyType.CARBON_SINK: {"tCO2e": 1.0, "kgCO2e": 1e-3},
}
for _fuel, _density in _DENSITY_T_PER_L.items():
    _FACTORS[_fuel] = {**_MASS, "L": _density, "kL": _density * 1e3}


def _energy_type(energy_type: str) -> EnergyType:
    try:
        return EnergyType(energy_type)
    except ValueError:
        raise ContractError(
            ReasonCode.UNKNOWN_ENERGY_TYPE, f"unknown energy type {energy_type!r}", "energy_type"
        ) from None


def canonical_unit(energy_type: str) -> str:
    """The canonical unit of an energy type; raises ContractError for an unknown type."""
    return CANONICAL_UNIT[_energy_type(energy_type)]


def conversion_factor(energy_type: str, unit: str) -> float:
    """Multiplier taking a value in `unit` to the energy type's canonical unit."""
    factors = _FACTORS[_energy_type(energy_type)]
    try:
        return factors[unit]
    except KeyError:
        raise ContractError(
            ReasonCode.UNKNOWN_UNIT,
            f"unit {unit!r} is not known for {energy_type} (known: {', '.join(factors)})",
            "unit",
        ) from None
