"""The writer: exact rollups under repeated revisions and replays, local calendars,
deduplication tokens, batching, bad records, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.errors import ContractError, ReasonCode
from sinks.store import Store
from sinks.writer import Writer, apply_retention, dedup_token, utc_offset_minutes
from tests.sinks.dataset import window

START = datetime(2026, 3, 31, 15, 0, tzinfo=UTC)  # 23:00 on 31 March in Asia/Shanghai


def _w(i: int, rev: int) -> bytes:
    # window i, revision rev: tCO2e (i + 1) * (rev + 1) / 10, so the final revision 3 is 0.4 (i + 1)
    start = (START + timedelta(minutes=15 * i)).isoformat()
    return window("A", "electricity", start, round((i + 1) * (rev + 1) / 10, 10), rev).dumps()


def _send(writer: Writer, batch: list[tuple[int, int, int]]) -> None:
    """(offset, window, revision) records on partition 0 of emissions.windows, then store."""
    for offset, i, rev in batch:
        writer.add("emissions.windows", 0, offset, _w(i, rev), 0)
    writer.store_pending()


def _raw_count(store: Store) -> int:
    return store.query("SELECT count() FROM emissions_15m").result_rows[0][0]


def test_rollups_are_exact_under_repeated_revisions_and_replays(backend: Store) -> None:
    backend.command("SYSTEM STOP MERGES emissions_15m")  # so raw counts show deduplication
    writer = Writer(backend, timezone="Asia/Shanghai")
    b1 = [(o, i, 0) for o, i in enumerate(range(8))] + [(8, 0, 2), (9, 5, 2)]
    b2 = [(10 + i, i, 3) for i in range(4)] + [(14 + i, i, 1) for i in range(8)]  # late rev 1
    b3 = [(22 + i, 4 + i, 3) for i in range(4)] + [(26, 2, 2)]  # rev 2 after rev 3
    for batch in (b1, b2, b3):
        _send(writer, batch)
    stored = _raw_count(backend)
    # ReplacingMergeTree already collapses a window's revisions inside one insert
    # (optimize_on_insert): b1 8 windows, b2 8, b3 5 -> 21 rows stored
    assert stored == 8 + 8 + 5
    _send(writer, b2)  # the same offsets again (a crash before the commit): same token
    assert _raw_count(backend) == stored
    _send(writer, b1 + b2 + b3)  # a replay cut differently: new token, rows collapse in FINAL
    # hand computation: final revision 3 of window i is 0.4 (i + 1); windows 0-3 are the
    # local hour 23:00 of 31 March, windows 4-7 the hour 00:00 of 1 April (local calendar)
    hour1, hour2 = 0.4 * (1 + 2 + 3 + 4), 0.4 * (5 + 6 + 7 + 8)
    hourly = backend.query(
        "SELECT hour_start, day, tco2e, windows FROM emissions_hourly ORDER BY hour_start"
    ).result_rows
    assert [(h.replace(tzinfo=UTC), d.isoformat(), n) for h, d, _t, n in hourly] == [
        (START, "2026-03-31", 4),
        (START + timedelta(hours=1), "2026-04-01", 4),
    ]
    assert [t for *_x, t, _n in hourly] == pytest.approx([hour1, hour2])
    daily = backend.query("SELECT day, tco2e FROM emissions_daily ORDER BY day").result_rows
    assert [(d.isoformat(), t) for d, t in daily] == [
        ("2026-03-31", pytest.approx(hour1)),
        ("2026-04-01", pytest.approx(hour2)),
    ]
    monthly = backend.query("SELECT month, tco2e FROM emissions_monthly ORDER BY month").result_rows
    assert [(m.isoformat(), t) for m, t in monthly] == [
        ("2026-03-01", pytest.approx(hour1)),
        ("2026-04-01", pytest.approx(hour2)),
    ]
    final = backend.query("SELECT count(), min(revision) FROM emissions_15m FINAL").result_rows
    assert final == [(8, 3)]


def test_local_calendar_follows_the_accounts_time_zone(store: Store) -> None:
    writer = Writer(store, timezone="Asia/Shanghai")
    berlin = (
        b'{"account_id": "B", "area": "industry", "name": "b", "region": "r", "district": "d",'
        b' "industry_code": "1", "denominator_unit": "MWh", "timezone": "Europe/Berlin"}'
    )
    writer.add("accounts.registry", 0, 0, berlin, 1_700_000_000_000)
    # 2026-03-31T23:00Z: 1 April 01:00 in Berlin (summer time, +120), 07:00 in Shanghai
    writer.add(
        "emissions.windows",
        0,
        1,
        window("B", "electricity", "2026-03-31T23:00:00+00:00", 1.0, 0).dumps(),
        0,
    )
    writer.add(
        "emissions.windows",
        0,
        2,
        window("S", "electricity", "2026-03-31T23:00:00+00:00", 2.0, 0).dumps(),
        0,
    )
    writer.store_pending()
    rows = store.query(
        "SELECT account_id, day FROM emissions_daily ORDER BY account_id"
    ).result_rows
    assert [(a, d.isoformat()) for a, d in rows] == [("B", "2026-04-01"), ("S", "2026-04-01")]
    offsets = store.query(
        "SELECT account_id, utc_offset_minutes FROM emissions_15m ORDER BY account_id"
    ).result_rows
    assert offsets == [("B", 120), ("S", 480)]
    # a new writer learns the zone from the stored registry
    again = Writer(store)
    assert again.load_zones() == 1 and again.zones == {"B": "Europe/Berlin"}


def test_utc_offset_minutes() -> None:
    assert utc_offset_minutes(datetime(2026, 1, 1, tzinfo=UTC), "Asia/Shanghai") == 480
    assert utc_offset_minutes(datetime(2026, 1, 1, tzinfo=UTC), "Europe/Berlin") == 60
    assert utc_offset_minutes(datetime(2026, 7, 1, tzinfo=UTC), "Europe/Berlin") == 120
    assert utc_offset_minutes(datetime(2026, 1, 1, tzinfo=UTC), "Asia/Kolkata") == 330


def test_bad_records_raise_with_a_reason_and_count_as_handled(store: Store) -> None:
    writer = Writer(store)
    with pytest.raises(ContractError) as err:
        writer.add("emissions.windows", 3, 7, b"{not json", 0)
    assert err.value.reason == ReasonCode.BAD_ENCODING
    with pytest.raises(ContractError) as err:
        writer.add("emissions.windows", 3, 8, b'{"account_id": "A"}', 0)
    assert err.value.reason == ReasonCode.MISSING_FIELD
    with pytest.raises(ContractError) as err:
        writer.add(
            "accounts.registry",
            3,
            9,
            b'{"account_id": "A", "area": "industry", "name": "a", "region": "r", "district": "d",'
            b' "industry_code": "1", "denominator_unit": "MWh", "timezone": "Mars/Olympus"}',
            0,
        )
    assert err.value.reason == ReasonCode.BAD_ENUM
    assert writer.pending_rows == 0
    # their offsets are still committed with the next batch, so they are not read again
    assert writer.store_pending() == {("emissions.windows", 3): 9, ("accounts.registry", 3): 10}


def test_batches_are_due_by_rows_or_by_age(store: Store) -> None:
    now = [0.0]
    writer = Writer(store, batch_rows=3, batch_seconds=2.0, clock=lambda: now[0])
    assert not writer.due()
    writer.add("emissions.windows", 0, 0, _w(0, 0), 0)
    assert not writer.due()
    now[0] = 2.5
    assert writer.due()  # old enough
    assert writer.store_pending() == {("emissions.windows", 0): 1}
    for o in range(3):
        writer.add("emissions.windows", 1, o, _w(o, 0), 0)
    assert writer.due()  # full
    assert writer.store_pending() == {("emissions.windows", 1): 3}


def test_dedup_token_names_table_topics_partitions_and_offsets() -> None:
    ranges = [("emissions.windows", 2, 10, 19), ("emissions.windows", 0, 5, 9)]
    assert dedup_token("emissions_15m", ranges) == (
        "emissions_15m/emissions.windows/0/5-9,emissions.windows/2/10-19"
    )
    assert dedup_token("emissions_15m", reversed(ranges)) == dedup_token("emissions_15m", ranges)


def test_retention_sets_the_raw_ttl_once(store: Store) -> None:
    assert apply_retention(store, 30) == "TTL set to 30 days"
    assert apply_retention(store, 30) == "TTL 30 days"
    engine = store.query(
        "SELECT engine_full FROM system.tables "
        "WHERE database = currentDatabase() AND name = 'energy_intervals'"
    ).result_rows[0][0]
    assert "toIntervalDay(30)" in engine.replace(" ", "")
    assert apply_retention(store, 0) == "TTL removed"
    assert apply_retention(store, 0) == "no TTL"


@pytest.mark.parametrize(
    "patch",
    [
        {},
        {"tco2e": "1"},
        {"tco2e": True},
        {"tco2e": float("nan")},
        {"revision": 1.5},
        {"energy_type": "plasma"},
        {"window_start": "2026-01-01T00:00:00"},
        {"window_start": None},
        {"uncertain": "no"},
        {"unit": 3},
    ],
)
def test_fast_decoder_agrees_with_the_contract_decoder(patch: dict) -> None:
    import json

    from schemas.codec import decode
    from schemas.contracts import EmissionWindow
    from sinks.writer import _decoder

    obj = {
        **json.loads(window("A", "electricity", "2026-01-01T00:00:00+00:00", 1.0, 0).dumps()),
        **patch,
    }
    data = json.dumps(obj).encode()
    try:
        expected = decode(EmissionWindow, obj).asdict()
    except ContractError as exc:
        with pytest.raises(ContractError) as err:
            _decoder(EmissionWindow)(data)
        assert (err.value.reason, err.value.field) == (exc.reason, exc.field)
    else:
        assert _decoder(EmissionWindow)(data) == expected


def test_fast_decoder_checks_lists_of_integers() -> None:
    from schemas.contracts import EnergyInterval
    from sinks.writer import _decoder

    good = {
        "meter_id": "M",
        "account_id": "A",
        "energy_type": "electricity",
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-01-01T00:15:00Z",
        "consumption": 1,
        "unit": "kWh",
        "uncertain": False,
        "event": "",
        "source_seqs": [1, 2],
    }
    import json

    assert _decoder(EnergyInterval)(json.dumps(good).encode())["source_seqs"] == [1, 2]
    with pytest.raises(ContractError) as err:
        _decoder(EnergyInterval)(json.dumps({**good, "source_seqs": [1, "2"]}).encode())
    assert err.value.reason == ReasonCode.WRONG_TYPE


def test_arrow_batches_of_intervals_are_stored_whole(store: Store) -> None:
    # the accounting agent sends energy.intervals as Arrow IPC batches (content-type header)
    from schemas import ARROW_FORMAT, FORMAT_HEADER, EnergyInterval, decode, to_arrow

    def interval(meter: str, minutes: int, kwh: float) -> EnergyInterval:
        start = START + timedelta(minutes=minutes)
        return decode(
            EnergyInterval,
            {
                "meter_id": meter,
                "account_id": "A",
                "energy_type": "electricity",
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=15)).isoformat(),
                "consumption": kwh,
                "unit": "kWh",
                "uncertain": False,
                "event": "",
                "source_seqs": [1, 2],
            },
        )

    batch = to_arrow(EnergyInterval, [interval("M1", 0, 1.5), interval("M2", 15, 2.5)])
    headers = [(FORMAT_HEADER, ARROW_FORMAT)]
    writer = Writer(store)
    writer.add("energy.intervals", 0, 0, batch, 0, headers)
    with pytest.raises(ContractError) as info:
        writer.add("energy.intervals", 0, 1, b"not arrow", 0, headers)
    assert info.value.reason is ReasonCode.BAD_ENCODING
    writer.store_pending()
    rows = store.query(
        "SELECT meter_id, consumption FROM energy_intervals FINAL ORDER BY meter_id"
    ).result_rows
    assert rows == [("M1", 1.5), ("M2", 2.5)]


def test_arrow_batches_of_windows_store_their_good_rows_and_return_the_bad(store: Store) -> None:
    # the accounting agent sends emissions.windows as Arrow IPC batches of many accounts' windows
    from schemas import ARROW_FORMAT, FORMAT_HEADER, EmissionWindow, arrow_row, from_arrow, to_arrow

    good = [window(a, "electricity", START.isoformat(), t, 0) for a, t in (("A", 1.5), ("B", 2.5))]
    bad = {**good[0].asdict(), "account_id": "C", "tco2e": float("nan")}
    batch = to_arrow(EmissionWindow, [good[0], bad, good[1]])
    headers = [(FORMAT_HEADER, ARROW_FORMAT)]
    writer = Writer(store, timezone="Asia/Shanghai")
    (error,) = writer.add("emissions.windows", 0, 0, batch, 0, headers)
    assert (error.reason, error.field, error.row) == (ReasonCode.NOT_FINITE, "tco2e", 1)
    assert from_arrow(arrow_row(batch, error.row)).to_pylist()[0]["account_id"] == "C"
    with pytest.raises(ContractError) as info:
        writer.add("emissions.windows", 0, 1, b"not arrow", 0, headers)
    assert info.value.reason is ReasonCode.BAD_ENCODING and info.value.row is None
    assert writer.add("emissions.windows", 0, 2, good[0].dumps(), 0) == []  # JSON still
    assert writer.store_pending() == {("emissions.windows", 0): 3}
    rows = store.query(
        "SELECT account_id, tco2e, utc_offset_minutes FROM emissions_15m FINAL ORDER BY account_id"
    ).result_rows
    assert rows == [("A", 1.5, 480), ("B", 2.5, 480)]


def _interval(meter: str, minutes: int, seqs: list[int]) -> dict:
    start = START + timedelta(minutes=minutes)
    return {
        "meter_id": meter,
        "account_id": "A",
        "energy_type": "electricity",
        "start": start,
        "end": start + timedelta(minutes=15),
        "consumption": 1.25 * (minutes + 1),
        "unit": "kWh",
        "uncertain": minutes % 2 == 1,
        "event": "",
        "source_seqs": seqs,
    }


def test_arrow_batches_are_stored_as_columns_exactly_as_rows_are(backend: Store) -> None:
    # the columnar path (`checked_arrow`, insert_arrow) against the row path (JSON records),
    # on each tier: the same rows, column for column
    from schemas import ARROW_FORMAT, FORMAT_HEADER, EmissionWindow, EnergyInterval, to_arrow
    from tests.sinks.dataset import records

    labels = [r for topic, r in records() if topic == "accounts.labels"]
    windows = [
        window(a, e, (START + timedelta(minutes=15 * i)).isoformat(), 0.5 + i, i)
        for i, (a, e) in enumerate(
            [("B", "electricity"), ("S", "natural_gas"), ("S", "electricity")]
        )
    ]
    intervals = [_interval("M1", 0, [1, 2]), _interval("M2", 15, []), _interval("M3", 30, [7])]
    cases = [
        ("accounts.labels", "account_labels", type(labels[0]), [r.asdict() for r in labels]),
        ("emissions.windows", "emissions_15m", EmissionWindow, [w.asdict() for w in windows]),
        ("energy.intervals", "energy_intervals", EnergyInterval, intervals),
    ]
    headers = [(FORMAT_HEADER, ARROW_FORMAT)]
    for topic, table, contract, rows in cases:
        stored = []
        for columnar in (True, False):
            backend.command(f"TRUNCATE TABLE {table}")
            writer = Writer(backend, timezone="Asia/Shanghai")
            writer.zones["B"] = "Europe/Berlin"  # a window's offset follows its account
            if columnar:
                assert writer.add(topic, 0, 0, to_arrow(contract, rows), 0, headers) == []
            else:
                for offset, row in enumerate(rows):
                    writer.add(topic, 0, offset, contract(**row).dumps(), 0)
            writer.store_pending()
            stored.append(backend.query(f"SELECT * FROM {table} ORDER BY ALL").result_rows)
        assert len(stored[0]) == len(rows) and stored[0] == stored[1], topic
    offsets = backend.query(
        "SELECT account_id, utc_offset_minutes FROM emissions_15m ORDER BY ALL"
    ).result_rows
    assert offsets == [("B", 120), ("S", 480), ("S", 480)]  # Berlin summer time


def test_a_batch_of_columns_and_rows_is_one_insert_stored_once(store: Store) -> None:
    # Arrow batches and JSON records of one table go in one INSERT with one token: the
    # same offsets again store nothing twice
    from schemas import ARROW_FORMAT, FORMAT_HEADER, EmissionWindow, to_arrow

    def windows(a: str) -> list:
        return [
            window(a, "electricity", (START + timedelta(minutes=15 * i)).isoformat(), 1, 0)
            for i in range(3)
        ]

    headers = [(FORMAT_HEADER, ARROW_FORMAT)]
    bad = [*windows("Z")[:1], {**windows("Z")[1].asdict(), "tco2e": float("nan")}]
    for _replay in range(2):
        writer = Writer(store)
        writer.add("emissions.windows", 0, 0, to_arrow(EmissionWindow, windows("A")), 0, headers)
        writer.add("emissions.windows", 0, 1, windows("J")[0].dumps(), 0)
        writer.add("emissions.windows", 1, 0, to_arrow(EmissionWindow, windows("P")), 0, headers)
        (error,) = writer.add("emissions.windows", 1, 1, to_arrow(EmissionWindow, bad), 0, headers)
        assert (error.reason, error.row) == (ReasonCode.NOT_FINITE, 1)
        assert writer.pending_rows == 3 + 1 + 3 + 1
        assert writer.store_pending() == {("emissions.windows", 0): 2, ("emissions.windows", 1): 2}
    accounts = store.query(
        "SELECT account_id, count() FROM emissions_15m GROUP BY ALL ORDER BY ALL"
    ).result_rows
    assert accounts == [("A", 3), ("J", 1), ("P", 3), ("Z", 1)]
