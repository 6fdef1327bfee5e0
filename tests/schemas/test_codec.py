"""Every contract decodes its valid examples; each kind of bad input gives its reason code."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import (
    ARROW_FORMAT,
    FORMAT_HEADER,
    JSON_FORMAT,
    Account,
    AccountLabel,
    Benchmark,
    BenefitEvent,
    BenefitPoints,
    ContractError,
    Denominator,
    EmissionFactor,
    EmissionWindow,
    EnergyInterval,
    Reading,
    ReasonCode,
    arrow_row,
    arrow_schema,
    decode,
    decode_json,
    from_arrow,
    message_format,
    readings_from_message,
    records_from_message,
    to_arrow,
)
from schemas.jsonschema import CONTRACTS


def reading(**overrides: Any) -> dict[str, Any]:
    base = {
        "meter_id": "M-001",
        "account_id": "ENT-001",
        "energy_type": "electricity",
        "kind": "cumulative",
        "value": 1234.5,
        "unit": "kWh",
        "ts": "2026-03-01T08:15:00+08:00",
        "quality": "good",
        "source": "opcua://plc-1",
        "seq": 7,
        "counter_max": 99999.9,
        "period_start": None,
    }
    base.update(overrides)
    return base


T0 = "2026-03-01T00:00:00Z"
T1 = "2026-03-01T00:15:00Z"

VALID: dict[type, dict[str, Any]] = {
    Reading: reading(),
    EnergyInterval: {
        "meter_id": "M-1",
        "account_id": "A",
        "energy_type": "heat",
        "start": T0,
        "end": T1,
        "consumption": 1.5,
        "unit": "GJ",
        "uncertain": False,
        "event": "",
        "source_seqs": [1, 2],
    },
    EmissionWindow: {
        "account_id": "A",
        "energy_type": "electricity",
        "window_start": T0,
        "window_end": T1,
        "consumption": 100.0,
        "unit": "kWh",
        "tco2e": 0.055,
        "factor_id": "grid-east-china",
        "factor_version": "2023",
        "factor_value": 0.00055,
        "factor_unit": "tCO2e/kWh",
        "revision": 1,
    },
    AccountLabel: {
        "account_id": "A",
        "area": "industry",
        "industry_code": "C27",
        "region": "zj",
        "old_colour": None,
        "new_colour": "dark_green",
        "k": 0.7,
        "intensity": 0.07,
        "benchmark": 0.1,
        "benchmark_version": "2025",
        "period_start": T0,
        "period_end": T1,
        "reason": "first_evaluation",
        "revision": 1,
        "ts": T1,
    },
    Account: {
        "account_id": "A",
        "area": "industry",
        "name": "Huakang",
        "region": "east_china",
        "district": "kecheng",
        "industry_code": "C27",
        "denominator_unit": "10k_yuan",
    },
    Denominator: {
        "account_id": "A",
        "period_start": T0,
        "period_end": T1,
        "value": 10.0,
        "unit": "10k_yuan",
    },
    Benchmark: {
        "area": "industry",
        "industry_code": "C27",
        "region": "zj",
        "period_start": T0,
        "period_end": T1,
        "value": 0.1,
        "unit": "tCO2e/10k_yuan",
        "source": "x",
        "version": "1",
    },
    EmissionFactor: {
        "factor_id": "f",
        "energy_type": "electricity",
        "region": "national",
        "value": 0.0005306,
        "unit": "tCO2e/kWh",
        "effective_from": T0,
        "effective_to": None,
        "source": "MEE 2025",
        "version": "2023",
    },
    BenefitEvent: {
        "event_id": "e1",
        "account_id": "P1",
        "behaviour": "bus_trip",
        "quantity": 1.0,
        "unit": "trip",
        "ts": T0,
    },
    BenefitPoints: {
        "event_id": "e1",
        "account_id": "P1",
        "behaviour": "bus_trip",
        "quantity": 1.0,
        "unit": "trip",
        "reduction_g": 212.5,
        "points": 2.0,
        "capped": False,
        "ts": T0,
    },
}


def test_every_contract_has_a_valid_example() -> None:
    assert set(VALID) == set(CONTRACTS)


@pytest.mark.parametrize("cls", CONTRACTS, ids=lambda c: c.__name__)
def test_valid_example_decodes_and_round_trips(cls: type) -> None:
    record = decode(cls, VALID[cls])
    again = decode_json(cls, record.dumps())
    assert again == record
    table = from_arrow(to_arrow(cls, [record, record]))
    assert table.num_rows == 2
    assert decode(cls, table.to_pylist()[0]) == record


def test_reading_time_is_utc() -> None:
    r = decode(Reading, reading(ts="2026-03-01T08:15:00+08:00"))
    assert r.ts == datetime(2026, 3, 1, 0, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"meter_id": None}, ReasonCode.MISSING_FIELD, "meter_id"),
        ({"value": "12"}, ReasonCode.WRONG_TYPE, "value"),
        ({"value": True}, ReasonCode.WRONG_TYPE, "value"),
        ({"seq": 1.5}, ReasonCode.WRONG_TYPE, "seq"),
        ({"value": math.nan}, ReasonCode.NOT_FINITE, "value"),
        ({"value": math.inf}, ReasonCode.NOT_FINITE, "value"),
        ({"value": -1.0}, ReasonCode.NEGATIVE_VALUE, "value"),
        ({"unit": "furlong"}, ReasonCode.UNKNOWN_UNIT, "unit"),
        ({"unit": "Nm3"}, ReasonCode.UNKNOWN_UNIT, "unit"),
        ({"energy_type": "plutonium"}, ReasonCode.UNKNOWN_ENERGY_TYPE, "energy_type"),
        ({"kind": "sometimes"}, ReasonCode.BAD_ENUM, "kind"),
        ({"quality": "meh"}, ReasonCode.BAD_ENUM, "quality"),
        ({"ts": "yesterday"}, ReasonCode.BAD_TIME, "ts"),
        ({"ts": "2026-03-01T08:15:00"}, ReasonCode.BAD_TIME, "ts"),
        ({"ts": 1700000000}, ReasonCode.BAD_TIME, "ts"),
        ({"kind": "interval"}, ReasonCode.MISSING_FIELD, "period_start"),
        (
            {"kind": "interval", "period_start": "2026-03-01T08:15:00+08:00"},
            ReasonCode.BAD_TIME,
            "period_start",
        ),
        ({"counter_max": 0.0}, ReasonCode.OUT_OF_RANGE, "counter_max"),
    ],
)
def test_bad_reading_gives_its_reason(
    change: dict[str, Any], reason: ReasonCode, field: str
) -> None:
    with pytest.raises(ContractError) as info:
        decode(Reading, reading(**change))
    assert info.value.reason is reason
    assert info.value.field == field


def test_missing_key_is_missing_field_not_keyerror() -> None:
    obj = reading()
    del obj["account_id"]
    with pytest.raises(ContractError) as info:
        decode(Reading, obj)
    assert info.value.reason is ReasonCode.MISSING_FIELD


def test_not_json_and_not_object() -> None:
    with pytest.raises(ContractError) as info:
        decode_json(Reading, b"{not json")
    assert info.value.reason is ReasonCode.BAD_ENCODING
    with pytest.raises(ContractError) as info:
        decode_json(Reading, b"[1, 2]")
    assert info.value.reason is ReasonCode.WRONG_TYPE


def test_interval_reading_and_litres_of_diesel() -> None:
    r = decode(
        Reading,
        reading(
            kind="interval",
            period_start="2026-03-01T08:00:00+08:00",
            energy_type="diesel",
            unit="L",
            counter_max=None,
        ),
    )
    assert r.period_start < r.ts


def test_message_formats_by_header() -> None:
    good, bad = reading(), reading(value=math.nan)
    arrow = to_arrow(Reading, [decode(Reading, good), decode(Reading, reading(seq=8))])
    out = readings_from_message(arrow, {FORMAT_HEADER: ARROW_FORMAT})
    assert [r.seq for r in out] == [7, 8]
    out = readings_from_message(json.dumps(good).encode(), {FORMAT_HEADER: JSON_FORMAT})
    assert isinstance(out[0], Reading)
    out = readings_from_message(json.dumps(bad).encode(), {})
    assert isinstance(out[0], ContractError) and out[0].reason is ReasonCode.NOT_FINITE
    out = readings_from_message(b"garbage", {FORMAT_HEADER: ARROW_FORMAT})
    assert out[0].reason is ReasonCode.BAD_ENCODING
    out = readings_from_message(b"x", {FORMAT_HEADER: b"text/csv"})
    assert out[0].reason is ReasonCode.BAD_ENCODING


def test_one_bad_row_does_not_reject_the_batch() -> None:
    rows = [reading(seq=1), reading(seq=2, unit="furlong"), reading(seq=3)]
    import pyarrow as pa

    from schemas import arrow_schema

    for row in rows:
        row["ts"] = datetime.fromisoformat(row["ts"])
    batch = pa.RecordBatch.from_pylist(rows, schema=arrow_schema(Reading))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    out = readings_from_message(sink.getvalue().to_pybytes(), {FORMAT_HEADER: ARROW_FORMAT})
    assert [type(x).__name__ for x in out] == ["Reading", "ContractError", "Reading"]
    assert out[1].reason is ReasonCode.UNKNOWN_UNIT


def _window_row(account_id: str, **overrides: Any) -> dict[str, Any]:
    return {**VALID[EmissionWindow], "account_id": account_id, "uncertain": False, **overrides}


def test_records_from_message_reads_windows_as_arrow_batches_or_json() -> None:
    rows = [_window_row("A"), _window_row("B", revision=2)]
    arrow = to_arrow(EmissionWindow, [decode(EmissionWindow, r) for r in rows])
    from_batch = records_from_message(EmissionWindow, arrow, [(FORMAT_HEADER, ARROW_FORMAT)])
    one_by_one = [
        records_from_message(EmissionWindow, json.dumps(r).encode(), None)[0] for r in rows
    ]
    assert from_batch == one_by_one
    assert [(w.account_id, w.revision) for w in from_batch] == [("A", 1), ("B", 2)]
    # headers as Faust gives them (a dict, str or bytes values) or aiokafka (pairs)
    assert records_from_message(EmissionWindow, arrow, {FORMAT_HEADER: ARROW_FORMAT.decode()})
    assert message_format(((FORMAT_HEADER, ARROW_FORMAT),)) == ARROW_FORMAT
    assert message_format(None) == message_format({}) == JSON_FORMAT


def test_a_bad_row_of_a_window_batch_comes_back_in_its_place_with_its_row() -> None:
    rows = [_window_row("A"), _window_row("B", energy_type="plasma"), _window_row("C")]
    for row in rows:
        for name in ("window_start", "window_end"):
            row[name] = datetime.fromisoformat(row[name])
    arrow = to_arrow(EmissionWindow, rows)  # to_arrow does not check the contract
    out = records_from_message(EmissionWindow, arrow, {FORMAT_HEADER: ARROW_FORMAT})
    assert [getattr(x, "account_id", None) for x in out] == ["A", None, "C"]
    error = out[1]
    assert isinstance(error, ContractError) and error.row == 1
    assert error.reason is ReasonCode.UNKNOWN_ENERGY_TYPE
    # the row alone, verbatim (same schema), for the DLQ: it reads back to the same error
    alone = arrow_row(arrow, error.row)
    assert from_arrow(alone).schema == from_arrow(arrow).schema
    (again,) = records_from_message(EmissionWindow, alone, {FORMAT_HEADER: ARROW_FORMAT})
    assert isinstance(again, ContractError) and again.reason is error.reason
    assert from_arrow(alone).to_pylist()[0]["account_id"] == "B"
    # the message's own errors have no row: the message goes to the DLQ whole
    for value, fmt in ((b"garbage", ARROW_FORMAT), (b"{", JSON_FORMAT), (b"x", b"text/csv")):
        (bad,) = records_from_message(EmissionWindow, value, {FORMAT_HEADER: fmt})
        assert isinstance(bad, ContractError) and bad.row is None
        assert bad.reason is ReasonCode.BAD_ENCODING


def test_arrow_rows_are_to_pylist_with_cached_times() -> None:
    import pyarrow as pa

    from schemas.codec import _rows

    ms = [0, 1_767_225_600_123, None, 1_767_225_600_123]
    table = pa.table(
        {
            "at": pa.array(ms, pa.timestamp("ms", tz="UTC")),
            "local": pa.array(ms, pa.timestamp("ms")),  # no zone: left to pyarrow
            "n": [1, 2, 3, 4],
        }
    )
    rows = _rows(table)
    assert rows == table.to_pylist()
    assert rows[1]["at"].microsecond == 123_000 and rows[1]["at"].tzinfo is not None
    assert rows[1]["at"] is rows[3]["at"]  # one datetime per distinct ms


def test_rows_from_message_agrees_with_records_from_message() -> None:
    from schemas.codec import rows_from_message

    rows = [_window_row("A"), _window_row("B", energy_type="plasma"), _window_row("C", tco2e=-1)]
    for row in rows:
        for name in ("window_start", "window_end"):
            row[name] = datetime.fromisoformat(row[name])
    arrow = to_arrow(EmissionWindow, rows)
    for value, headers in (
        (arrow, {FORMAT_HEADER: ARROW_FORMAT}),
        (json.dumps(_window_row("D")).encode(), None),
        (b"{", None),
        (b"x", {FORMAT_HEADER: b"text/csv"}),
    ):
        records = records_from_message(EmissionWindow, value, headers)
        plain = rows_from_message(EmissionWindow, value, headers)
        assert [
            (x.reason, x.row) if isinstance(x, ContractError) else x.asdict() for x in records
        ] == [(x.reason, x.row) if isinstance(x, ContractError) else x for x in plain]
    assert [
        type(x).__name__
        for x in rows_from_message(EmissionWindow, arrow, {FORMAT_HEADER: ARROW_FORMAT})
    ] == ["dict", "ContractError", "dict"]


@pytest.mark.parametrize("cls", CONTRACTS, ids=lambda c: c.__name__)
def test_checked_arrow_gives_the_rows_rows_from_message_gives(cls: type) -> None:
    from schemas.codec import _rows, checked_arrow, rows_from_message

    record = decode(cls, VALID[cls])
    batch = to_arrow(cls, [record, record])
    table = checked_arrow(cls, batch)
    if cls is Reading:  # rules across fields (`check`): row by row only
        assert table is None
        return
    assert table is not None
    assert _rows(table) == rows_from_message(cls, batch, {FORMAT_HEADER: ARROW_FORMAT})


def _window_table(**columns: Any) -> bytes:
    """Two good windows as an Arrow IPC stream, with `columns` replaced (None: dropped)."""
    import pyarrow as pa

    from schemas.codec import _ipc_stream

    rows = [_window_row("A"), _window_row("B")]
    for row in rows:
        for name in ("window_start", "window_end"):
            row[name] = datetime.fromisoformat(row[name])
    table = pa.Table.from_pylist(rows, schema=arrow_schema(EmissionWindow))
    for name, column in columns.items():
        i = table.schema.get_field_index(name)
        if column is None:
            table = table.remove_column(i)
        else:
            table = table.set_column(i, pa.field(name, column.type), column)
    return _ipc_stream(table)


def test_checked_arrow_leaves_every_bad_or_odd_batch_to_the_row_path() -> None:
    import pyarrow as pa

    from schemas.codec import checked_arrow, rows_from_message

    headers = {FORMAT_HEADER: ARROW_FORMAT}
    assert checked_arrow(EmissionWindow, _window_table()) is not None
    bad = {
        "NaN": _window_table(tco2e=pa.array([1.0, math.nan])),
        "infinite": _window_table(consumption=pa.array([math.inf, 1.0])),
        "null": _window_table(account_id=pa.array(["A", None])),
        "enum": _window_table(energy_type=pa.array(["plasma", "electricity"])),
    }
    for name, batch in bad.items():
        assert checked_arrow(EmissionWindow, batch) is None, name
        reasons = [
            (x.reason, x.row)
            for x in rows_from_message(EmissionWindow, batch, headers)
            if isinstance(x, ContractError)
        ]
        assert len(reasons) == 1, name  # the row path names the one bad row
    # well-formed, but not the contract's own schema: the row path reads them (defaults, ints)
    odd = {
        "default column missing": _window_table(uncertain=None),
        "int32 revision": _window_table(revision=pa.array([1, 2], pa.int32())),
    }
    for name, batch in odd.items():
        assert checked_arrow(EmissionWindow, batch) is None, name
        assert all(
            isinstance(x, dict) for x in rows_from_message(EmissionWindow, batch, headers)
        ), name
    assert checked_arrow(EmissionWindow, b"not arrow") is None


def test_checked_arrow_checks_list_items_and_nullable_enums() -> None:
    import pyarrow as pa

    from schemas.codec import _ipc_stream, checked_arrow

    interval = decode(EnergyInterval, VALID[EnergyInterval]).asdict()
    table = pa.Table.from_pylist([interval, interval], schema=arrow_schema(EnergyInterval))
    i = table.schema.get_field_index("source_seqs")
    holes = table.set_column(
        i, table.schema.field(i), pa.array([[1], [2, None]], pa.list_(pa.int64()))
    )
    assert checked_arrow(EnergyInterval, _ipc_stream(table)) is not None
    assert checked_arrow(EnergyInterval, _ipc_stream(holes)) is None

    label = decode(AccountLabel, VALID[AccountLabel]).asdict()
    first = {**label, "old_colour": None}  # nullable enum: null is fine
    labels = to_arrow(AccountLabel, [label, first])
    assert checked_arrow(AccountLabel, labels) is not None
    unscored = {**label, "k": None, "intensity": None}  # nullable floats, null in every row
    assert checked_arrow(AccountLabel, to_arrow(AccountLabel, [unscored, unscored])) is not None
    purple = to_arrow(AccountLabel, [label, {**label, "new_colour": "purple"}])
    assert checked_arrow(AccountLabel, purple) is None
