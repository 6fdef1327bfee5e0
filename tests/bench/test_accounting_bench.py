"""Benchmark: readings/s normalised and accounted by one worker process (issue 4).

All three in one run, against one embedded broker, on the same readings:

- ours: `carbon-accounts worker` (the accounting agent), Arrow batches of one account's
  readings per message on `meter.readings` (4 partitions); the rate is taken from the
  worker's own output (`energy.intervals`, Arrow batches of intervals, one per reading
  after a meter's first): intervals between its first and last output batch / the time
  between them;
- (a) the naive Faust agent: one JSON reading per message, per-event windowed table;
- (b) Quix Streams: a tumbling-window sum with grace over the same JSON messages;
- and the agent's code without Kafka, in this process: the rules message by message
  (Arrow decode + `Accountant.process`), and the agent's own path (`_decode` of 200
  messages at a time, the in-order lane, the intervals' Arrow batch): the ceiling.

`make test` runs it tiny (a smoke test of the harness); `make bench` at full size, three
runs each, and writes the medians to var/bench/accounting.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra.broker import EmbeddedBroker, ensure_topics
from schemas.codec import ARROW_FORMAT, FORMAT_HEADER, JSON_FORMAT, to_arrow
from schemas.contracts import Reading
from schemas.factors import FactorBook, load_factors
from schemas.settings import Settings
from streams.agents.accounting import _decode, _interval_columns_batch
from streams.rules.accounting import Accountant, AccountState
from streams.rules.normalise import columns_from_arrow
from streams.runtime import create_topics

HERE = Path(__file__).parent
# as our collectors and agents send: the default compression (the embedded broker's
# cost follows the bytes it holds)
_PRODUCER = Settings().kafka.producer_options()
ROOT = HERE.parents[1]
# recent event times: the broker's retention deletes messages with old timestamps
T0 = datetime.fromtimestamp((time.time() // 900 - 40) * 900, UTC)
PARTITIONS = 4
ENERGY = [("electricity", "kWh"), ("natural_gas", "Nm3"), ("steam", "GJ")]


def _sizes(full: bool) -> dict[str, int]:
    if full:
        return {
            "accounts": 1000,
            "meters": 50,
            "cycles": 8,
            "naive": 30_000,
            "quix": 100_000,
            "runs": 3,
        }
    return {"accounts": 4, "meters": 10, "cycles": 3, "naive": 120, "quix": 120, "runs": 1}


def _batches(accounts: int, meters: int, cycles: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """Per poll cycle, per account: its meters' readings (the collectors' batches)."""
    out = []
    for c in range(cycles):
        ts = T0 + timedelta(minutes=15 * c)
        for a in range(accounts):
            rows = []
            for m in range(meters):
                et, unit = ENERGY[m % len(ENERGY)]
                rows.append(
                    {
                        "meter_id": f"A{a}-M{m}",
                        "account_id": f"A{a}",
                        "energy_type": et,
                        "kind": "cumulative",
                        "value": 1000.0 + c * (10.0 + m) + a,
                        "unit": unit,
                        "ts": ts,
                        "quality": "good",
                        "source": "bench",
                        "seq": c,
                        "counter_max": None,
                        "period_start": None,
                    }
                )
            out.append((f"A{a}", rows))
    return out


async def _produce(bootstrap: str, arrow: list[tuple[str, bytes]], json_topic: str,
                   readings: list[dict[str, Any]]) -> None:  # fmt: skip
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, **_PRODUCER
    )
    await producer.start()
    try:
        for key, value in arrow:
            await producer.send(
                "meter.readings", value, key=key.encode(), headers=[(FORMAT_HEADER, ARROW_FORMAT)]
            )
        for r in readings:
            body = {**r, "ts": r["ts"].isoformat()}
            await producer.send(
                json_topic,
                json.dumps(body).encode(),
                key=r["account_id"].encode(),
                headers=[(FORMAT_HEADER, JSON_FORMAT)],
                timestamp_ms=int(r["ts"].timestamp() * 1000),
            )
        await producer.flush()
    finally:
        await producer.stop()


async def _end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return await consumer.end_offsets(tps)
    finally:
        await consumer.stop()


async def _output_span(
    bootstrap: str,
    topic: str,
    start: dict[TopicPartition, int],
    expected: int,
    timeout: float,
    worker: subprocess.Popen[bytes],
) -> tuple[int, float]:
    """(interval rows, seconds from the first to the last batch) of a worker's output."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        stamps: list[int] = []
        rows = first = 0
        deadline = time.monotonic() + timeout
        while rows < expected and time.monotonic() < deadline and worker.poll() is None:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    n = pa.ipc.open_stream(r.value).read_all().num_rows
                    first = first or n  # the first batch's rows were done before the clock
                    rows += n
                    stamps.append(r.timestamp)
        assert rows >= expected, f"{rows} of {expected} intervals"
        return rows - first, (max(stamps) - min(stamps)) / 1000
    finally:
        await consumer.stop()


def _ours(bootstrap: str, sizes: dict[str, int], tmp: Path, run: int) -> float:
    # one interval per reading but each meter's first
    intervals = sizes["accounts"] * (sizes["cycles"] - 1) * sizes["meters"]
    start = asyncio.run(_end_offsets(bootstrap, "energy.intervals"))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CARBON_ACCOUNTS_DATA_DIR": str(tmp / f"ours{run}"),
        "CARBON_ACCOUNTS_STREAMS_APP_ID": f"bench-ours-{run}-{tmp.name}",
        "CARBON_ACCOUNTS_METRICS_ENABLED": "false",
    }
    log = (tmp / f"ours{run}.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "streams", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        n, seconds = asyncio.run(
            _output_span(bootstrap, "energy.intervals", start, intervals, 180, worker)
        )
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
    return n / max(seconds, 1e-3)


def _script(args: list[str], timeout: float) -> float:
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    text = out.stdout + out.stderr  # Faust's worker logs what its agents print
    lines = [x[x.index('{"messages"') :] for x in text.splitlines() if '{"messages"' in x]
    assert lines, f"no result: {out.stdout[-2000:]} {out.stderr[-2000:]}"
    result = json.loads(lines[-1])
    return (result["messages"] - 1) / max(result["seconds"], 1e-3)


def _rules_only(arrow: list[tuple[str, bytes]]) -> float:
    accountant = Accountant(FactorBook(load_factors()), grace_hours=6, retention_hours=24)
    states: dict[str, AccountState] = {}
    n = 0
    started = time.perf_counter()
    for key, value in arrow:
        table = pa.ipc.open_stream(value).read_all()
        state = states.get(key) or states.setdefault(key, AccountState(key))
        accountant.process(state, columns_from_arrow(table))
        n += table.num_rows
    return n / (time.perf_counter() - started)


def _lane_only(arrow: list[tuple[str, bytes]]) -> float:
    """What the agent does per inbox, without Kafka or Faust: decode 200 messages
    together, the in-order lane (`process` for what it does not take), the intervals'
    Arrow batch."""
    accountant = Accountant(FactorBook(load_factors()), grace_hours=6, retention_hours=24)
    states: dict[str, AccountState] = {}
    events = [
        SimpleNamespace(key=k.encode(), value=v, headers={FORMAT_HEADER: ARROW_FORMAT})
        for k, v in arrow
    ]
    n = 0
    started = time.perf_counter()
    for i in range(0, len(events), 200):
        decoded, shared = _decode(events[i : i + 200])
        spans, parts = [], []
        for _event, _fmt, entries in decoded:
            assert not isinstance(entries, Exception), entries
            for key, _cols, a, b, batch in entries:
                state = states.get(key) or states.setdefault(key, AccountState(key))
                spans.append((state, a, b, None))
                parts.append(batch)
                n += b - a
        assert shared is not None
        outcomes, ivc = accountant.process_spans(spans, shared)
        for (state, _a, _b, _r), outcome, batch in zip(spans, outcomes, parts, strict=True):
            if outcome is None:
                accountant.process(state, columns_from_arrow(batch))
        if ivc is not None:
            _interval_columns_batch(ivc, [state.account_id for state, *_ in spans])
    return n / (time.perf_counter() - started)


@pytest.mark.bench
@pytest.mark.timeout(1800)  # full size: three runs of four pipelines (the suite's default is 300 s)
def test_accounting_throughput(bench_full: bool, tmp_path: Path, unique: str) -> None:
    sizes = _sizes(bench_full)
    batches = _batches(sizes["accounts"], sizes["meters"], sizes["cycles"])
    arrow = [(key, to_arrow(Reading, rows)) for key, rows in batches]
    readings = [r for _key, rows in batches for r in rows]
    json_n = max(sizes["naive"], sizes["quix"])
    assert len(readings) >= json_n
    json_topic = f"bench.json.{unique}"
    results: dict[str, list[float]] = {
        "ours": [], "naive": [], "quix": [], "rules": [], "lane": []
    }  # fmt: skip
    with EmbeddedBroker(tmp_path / "kafka", log_file=tmp_path / "broker.log") as broker:
        bootstrap = broker.bootstrap
        settings = Settings(data_dir=str(tmp_path / "var"))
        settings.kafka.partitions = PARTITIONS
        asyncio.run(create_topics(settings, bootstrap))
        asyncio.run(ensure_topics(bootstrap, [(json_topic, PARTITIONS, False)]))
        asyncio.run(_produce(bootstrap, arrow, json_topic, readings[:json_n]))
        for run in range(sizes["runs"]):
            results["rules"].append(_rules_only(arrow))
            print(f"run {run}: rules {results['rules'][-1]:,.0f}/s", flush=True)
            results["lane"].append(_lane_only(arrow))
            print(f"run {run}: lane {results['lane'][-1]:,.0f}/s", flush=True)
            results["ours"].append(_ours(bootstrap, sizes, tmp_path, run))
            print(f"run {run}: ours {results['ours'][-1]:,.0f}/s", flush=True)
            results["naive"].append(
                _script(
                    [
                        str(HERE / "_naive_faust.py"),
                        bootstrap,
                        json_topic,
                        f"naive-{run}-{unique}",
                        str(sizes["naive"]),
                        str(PARTITIONS),
                    ],
                    timeout=300,
                )
            )
            print(f"run {run}: naive {results['naive'][-1]:,.0f}/s", flush=True)
            results["quix"].append(
                _script(
                    [
                        str(HERE / "_quix.py"),
                        bootstrap,
                        json_topic,
                        f"quix-{run}-{unique}",
                        str(sizes["quix"]),
                        str(tmp_path / f"quix{run}"),
                    ],
                    timeout=300,
                )
            )
            print(f"run {run}: quix {results['quix'][-1]:,.0f}/s", flush=True)
    medians = {k: statistics.median(v) for k, v in results.items()}
    table = _table(sizes, results, medians, bench_full)
    print("\n" + table)
    if bench_full:
        out = ROOT / "var" / "bench"
        out.mkdir(parents=True, exist_ok=True)
        (out / "accounting.md").write_text(table)
    assert all(v > 0 for v in medians.values())


def _table(sizes: dict[str, int], results: dict[str, list[float]], medians: dict[str, float],
           full: bool) -> str:  # fmt: skip
    names = {
        "ours": "ours: accounting agent, Arrow batches (1 worker process)",
        "naive": "(a) naive Faust agent, JSON per event, windowed table",
        "quix": "(b) Quix Streams tumbling-window sum, JSON per event",
        "rules": "the rules in-process, message by message (Arrow decode + process), no Kafka",
        "lane": "the agent's path in-process (decode 200 at a time, in-order lane, "
        "intervals batch), no Kafka",
    }
    lines = [
        f"# Accounting benchmark ({'full' if full else 'tiny'}), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{sizes['accounts']} accounts x {sizes['meters']} meters x {sizes['cycles']} cycles "
        f"({sizes['accounts'] * sizes['meters'] * sizes['cycles']} readings, "
        f"{sizes['meters']} per Arrow message); JSON baselines: naive {sizes['naive']}, "
        f"Quix {sizes['quix']} messages; {PARTITIONS} partitions; runs: {sizes['runs']}",
        "",
        "| pipeline | readings/s (median) | runs | x naive | x Quix |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for key, name in names.items():
        runs = ", ".join(f"{v:,.0f}" for v in results[key])
        lines.append(
            f"| {name} | {medians[key]:,.0f} | {runs} | {medians[key] / medians['naive']:.1f} "
            f"| {medians[key] / medians['quix']:.2f} |"
        )
    return "\n".join(lines) + "\n"
