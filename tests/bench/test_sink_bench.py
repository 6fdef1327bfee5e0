"""Benchmark: the sink's rows/s into chdb for emission rows (decode + batch + insert).

Full size (`make bench`): 1,000,000 emission windows, batches of the default
`sinks.batch_rows` (50,000), 3 runs, median, the same rows two ways: one JSON record a
message (row by row), and Arrow IPC batches of `ARROW_ROWS` windows a message as the
accounting agent sends them (checked and stored as columns); plus a sweep of batch sizes
on 100,000 JSON rows, and the baseline of the same rows inserted already decoded (the
engine's and client's ceiling of the row path), measured in the same run. `make test`
runs it tiny. Results print with -s.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest

from schemas.codec import ARROW_FORMAT, FORMAT_HEADER, decode_json, to_arrow
from schemas.contracts import EmissionWindow
from schemas.settings import SinkSettings
from sinks.store import Store
from sinks.writer import SINK_TOPICS, Writer

BASE = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNTS = 1000
ARROW_ROWS = 250  # windows a message: one partition's accounts of one accounting round


def _records(n: int) -> list[bytes]:
    """n emission windows as JSON (a template: building Records would dominate the setup)."""
    out = []
    for i in range(n):
        start = BASE + timedelta(minutes=15 * (i // ACCOUNTS))
        end = start + timedelta(minutes=15)
        out.append(
            (
                f'{{"account_id": "E{i % ACCOUNTS}", "energy_type": "electricity", '
                f'"window_start": "{start.isoformat()}", "window_end": "{end.isoformat()}", '
                f'"consumption": {100 + i % 7}.5, "unit": "kWh", "tco2e": 0.0{i % 9 + 1}, '
                '"factor_id": "grid-east_china", "factor_version": "2023", '
                '"factor_value": 0.00055, "factor_unit": "tCO2e/kWh", "revision": 0, '
                '"uncertain": false}'
            ).encode()
        )
    return out


def _batches(records: list[bytes]) -> list[bytes]:
    """The same windows as Arrow IPC batches of ARROW_ROWS windows."""
    rows = [decode_json(EmissionWindow, r).asdict() for r in records]
    return [
        to_arrow(EmissionWindow, rows[i : i + ARROW_ROWS]) for i in range(0, len(rows), ARROW_ROWS)
    ]


def _count(store: Store) -> int:
    return store.query("SELECT count() FROM emissions_15m").result_rows[0][0]


def _sink_run(
    store: Store, records: list[bytes], batch_rows: int, run: int, rows: int | None = None
) -> float:
    """Feed records (JSON, or Arrow batches holding `rows` in all) through a Writer as the
    consumer does (8 partitions); returns rows/s."""
    store.command("TRUNCATE TABLE emissions_15m")
    topic = f"emissions.windows.bench{run}"  # new offsets' tokens: nothing deduplicated
    writer = Writer(
        store, batch_rows=batch_rows, batch_seconds=3600, topics={topic: "emissions.windows"}
    )
    headers = None if rows is None else [(FORMAT_HEADER, ARROW_FORMAT)]
    rows = len(records) if rows is None else rows
    started = time.perf_counter()
    for offset, value in enumerate(records):
        assert writer.add(topic, offset % 8, offset, value, 0, headers) == []
        if writer.due():
            writer.store_pending()
    writer.store_pending()
    rate = rows / (time.perf_counter() - started)
    assert _count(store) == rows  # every row stored (the keys are distinct)
    return rate


def _decoded(store: Store, records: list[bytes]) -> list[list]:
    writer = Writer(store)
    for offset, value in enumerate(records):
        writer.add("emissions.windows", 0, offset, value, 0)
    rows = writer._parts[("emissions_15m", "emissions.windows", 0)].rows
    writer.clear()
    return rows


def _baseline_run(store: Store, rows: list[list], batch_rows: int) -> float:
    """The same rows, decoded beforehand, inserted in the same batches; returns rows/s."""
    store.command("TRUNCATE TABLE emissions_15m")
    spec = SINK_TOPICS["emissions.windows"]
    columns = [*spec.columns, *spec.extra]
    started = time.perf_counter()
    for i in range(0, len(rows), batch_rows):
        store.insert("emissions_15m", rows[i : i + batch_rows], column_names=columns)
    rate = len(rows) / (time.perf_counter() - started)
    assert _count(store) == len(rows)
    return rate


@pytest.mark.bench
@pytest.mark.timeout(1800)
def test_sink_rows_per_second_into_chdb(store: Store, bench_full: bool) -> None:
    size, runs = (1_000_000, 3) if bench_full else (2_000, 1)
    batch = SinkSettings().batch_rows
    records = _records(size)
    rows = _decoded(store, records)
    batches = _batches(records)
    sink_rates, arrow_rates, base_rates = [], [], []
    for run in range(runs):  # interleaved: a noisy spell hits all three alike
        sink_rates.append(_sink_run(store, records, batch, run))
        arrow_rates.append(_sink_run(store, batches, batch, 50 + run, rows=size))
        base_rates.append(_baseline_run(store, rows, batch))
    sink, base = statistics.median(sink_rates), statistics.median(base_rates)
    arrow = statistics.median(arrow_rates)
    print(
        f"\nsink into chdb, {size:,} emission rows, batch {batch:,}: JSON a record: median "
        f"{sink:,.0f} rows/s of {runs} runs {[round(r) for r in sink_rates]}; Arrow batches "
        f"of {ARROW_ROWS}: median {arrow:,.0f} rows/s {[round(r) for r in arrow_rates]} "
        f"(x{arrow / sink:.1f}); row-path insert-only baseline {base:,.0f} rows/s; "
        f"JSON sink/baseline {sink / base:.2f}"
    )
    sweep = records[: 100_000 if bench_full else 1_000]
    for n, batch_rows in enumerate((1_000, 10_000, 50_000, 100_000)):
        rates = [_sink_run(store, sweep, batch_rows, 100 + 10 * n + r) for r in range(runs)]
        median = statistics.median(rates)
        print(f"  batch {batch_rows:>7,}: median {median:,.0f} rows/s ({len(sweep):,} rows)")
    assert sink > 0 and base > 0 and arrow > 0
