from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from schemas.jsonschema import CONTRACTS, export
from tests.schemas.test_codec import VALID, reading


def test_export_writes_a_valid_schema_per_contract(tmp_path: Path) -> None:
    paths = export(tmp_path)
    assert {p.stem for p in paths} == {c.__name__ for c in CONTRACTS}
    for cls in CONTRACTS:
        schema = json.loads((tmp_path / f"{cls.__name__}.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.validate(VALID[cls], schema)


def test_reading_schema_rejects_what_decode_rejects(tmp_path: Path) -> None:
    export(tmp_path)
    schema = json.loads((tmp_path / "Reading.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(reading(kind="sometimes"), schema)
    bad = reading()
    del bad["meter_id"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
