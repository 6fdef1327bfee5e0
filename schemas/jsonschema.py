"""JSON Schema (draft 2020-12) export of the contracts, for third-party producers."""

from __future__ import annotations

import json
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

from schemas.codec import field_types
from schemas.contracts import (
    Account,
    AccountLabel,
    Benchmark,
    BenefitEvent,
    BenefitPoints,
    Contract,
    Denominator,
    EmissionFactor,
    EmissionWindow,
    EnergyInterval,
    Reading,
)

__all__ = ["CONTRACTS", "export", "json_schema"]

CONTRACTS: tuple[type[Contract], ...] = (
    Reading,
    EnergyInterval,
    EmissionWindow,
    AccountLabel,
    Account,
    Denominator,
    Benchmark,
    EmissionFactor,
    BenefitEvent,
    BenefitPoints,
)


def _json_type(tp: Any) -> dict[str, Any]:
    if tp is datetime:
        return {"type": "string", "format": "date-time"}
    if typing.get_origin(tp) is list:
        return {"type": "array", "items": _json_type(typing.get_args(tp)[0])}
    return {"type": {str: "string", float: "number", int: "integer", bool: "boolean"}[tp]}


def json_schema(cls: type[Contract]) -> dict[str, Any]:
    """The JSON Schema of one contract."""
    props: dict[str, Any] = {}
    required: list[str] = []
    defaults = cls._options.defaults
    for name, (tp, nullable) in field_types(cls).items():
        prop = _json_type(tp)
        if tp is float:
            prop["description"] = "finite number"
        enum = cls.enums.get(name)
        if enum is not None:
            prop["enum"] = [e.value for e in enum]
        if nullable:
            prop = {"anyOf": [prop, {"type": "null"}]}
        props[name] = prop
        if name not in defaults:
            required.append(name)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"carbon-accounts/{cls.__name__}.json",
        "title": cls.__name__,
        "description": (cls.__doc__ or "").strip(),
        "x-topic": cls.topic,
        "type": "object",
        "properties": props,
        "required": required,
    }


def export(directory: Path) -> list[Path]:
    """Write one `<Contract>.json` per contract into `directory`; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for cls in CONTRACTS:
        path = directory / f"{cls.__name__}.json"
        path.write_text(json.dumps(json_schema(cls), indent=2) + "\n")
        paths.append(path)
    return paths
