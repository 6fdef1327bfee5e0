from __future__ import annotations

import pytest

from schemas import CANONICAL_UNIT, ContractError, EnergyType, ReasonCode, conversion_factor


def test_every_energy_type_has_a_canonical_unit_that_converts_to_itself() -> None:
    for energy_type in EnergyType:
        assert conversion_factor(energy_type, CANONICAL_UNIT[energy_type]) == 1.0


@pytest.mark.parametrize(
    ("energy_type", "unit", "factor"),
    [
        ("electricity", "MWh", 1000.0),
        ("heat", "MWh", 3.6),
        ("heat", "MJ", 0.001),
        ("diesel", "L", 0.00084),
        ("gasoline", "kL", 0.74),
        ("raw_coal", "kg", 0.001),
        ("natural_gas", "m3", 1.0),
    ],
)
def test_conversions(energy_type: str, unit: str, factor: float) -> None:
    assert conversion_factor(energy_type, unit) == pytest.approx(factor)


def test_unknown_unit_and_type() -> None:
    with pytest.raises(ContractError) as info:
        conversion_factor("electricity", "L")
    assert info.value.reason is ReasonCode.UNKNOWN_UNIT
    with pytest.raises(ContractError) as info:
        conversion_factor("fairy_dust", "kg")
    assert info.value.reason is ReasonCode.UNKNOWN_ENERGY_TYPE
