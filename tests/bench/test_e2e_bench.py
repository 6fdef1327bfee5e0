"""Benchmark: readings end to end, meter.readings → worker(s) → sink → ClickHouse (issue 8).

One embedded broker, the real `carbon-accounts worker` and `carbon-accounts sink`
subprocesses (the sink owns its chdb directory), and a load generator in this process:

- the fleet: accounts x meters, cumulative readings every `step` of event time, spanning
  more than the 6 h grace so that windows close; one Arrow batch per account per cycle
  on `meter.readings` (key account_id), built before the clock (the collectors that
  build them run elsewhere) and published as fast as the producer goes while the
  pipeline runs (a warm-up account first proves the pipeline is live before the clock);
- labels: before the clock the fleet's registry (`accounts.registry`), denominators
  (`accounts.denominators`) and industry benchmarks (`benchmarks`) are published, then a
  history of one window per local month (factor `bench-history`, as `make demo` does)
  that gives every account a colour. The readings cross a local month boundary: the
  first window of the new month closes the last month of the trailing 12 and the
  labelling agent re-evaluates every account. Steady accounts keep their colour,
  rising ones (`SURGE` x their history rate in the live readings) turn yellow, falling
  ones (a bad month a year earlier leaves the period) turn light green;
- throughput: readings published / (time from the first publication to the moment the
  sink's committed offset on `emissions.windows` covers the last window);
- latency (sampled: every `sample`-th account): for each window's first emission, the
  publication time of the batch that created it (the cycle whose interval holds the
  window) to the first poll (every 100 ms) that sees the sink's committed offset past the
  window's message: the sink commits only after the batch is in ClickHouse, so this is
  "stored", to within the poll interval and the sink's `batch_seconds`;
- label latency (every label change of the run): the publication time of the batch
  whose window closes the evaluation period (the first cycle of the new month) to the
  first poll that sees the sink's committed offset on `accounts.labels` past the
  label's message: stored in `account_labels`, what Grafana shows;
- CPU seconds and peak RSS (VmHWM) per process from /proc, read just before stopping,
  and this process's own CPU on the clock (the publisher's sends, the observer);
- the peers on the same readings as JSON (one reading per message, a prefix of the
  fleet's readings, shifted to recent event time: their message timestamps are event
  time): the ceiling (raw aiokafka + json.loads), the naive Faust agent and Quix Streams
  (tests/bench/_naive_faust.py, _quix.py), rates as in test_accounting_bench.

Every run checks the labels stored in ClickHouse equal those the pure rules
(`streams.rules.labelling.evaluate` and `decide`, at each month's close) give on the
replayed windows plus the history. The tiny run (make test) replays every account
(`carbon-accounts replay`'s function) and also checks the stored windows equal the
replay; full size replays one account of each kind (the accounts of a kind have the
same consumption) and writes var/bench/e2e.md and var/bench/e2e.png. Knobs for side runs
(environment): E2E_CYCLES (default 8: 800,000 readings over 8 h of event time, half of
them before the month boundary), E2E_WORKERS (worker processes in the group, default
1), E2E_PEERS=0 (ours only), E2E_PACE=N (publish N readings/s, not as fast as the
producer goes: latency below saturation), E2E_PROFILE=1 (the first worker under pyinstrument, report
in var/bench/e2e-worker0-profile.txt), E2E_TAG (write var/bench/e2e-TAG.* instead).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra import fetch_backoff
from infra.broker import EmbeddedBroker, ensure_topics, free_port
from schemas.codec import (
    ARROW_FORMAT,
    FORMAT_HEADER,
    JSON_FORMAT,
    decode_json,
    from_arrow,
    message_format,
    to_arrow,
)
from schemas.contracts import Account, Benchmark, Denominator, EmissionWindow, Reading
from schemas.settings import Settings
from streams.cli.replay_cmd import replay
from streams.registry import (
    benchmark_key,
    benchmark_value,
    denominator_key,
    denominator_value,
    load_rulebook,
    produce,
)
from streams.rules.labelling import (
    LabelReason,
    LabelState,
    decide,
    evaluate,
    local_month,
    month_add,
    month_start_utc,
)
from streams.runtime import create_topics
from tests.bench.test_accounting_bench import _script

HERE = Path(__file__).parent
# as our collectors and agents send: the default compression (the embedded broker's
# cost follows the bytes it holds)
_PRODUCER = Settings().kafka.producer_options()
ROOT = HERE.parents[1]
PARTITIONS = 4
ENERGY = [("electricity", "kWh"), ("natural_gas", "Nm3"), ("steam", "GJ")]
SINK_GROUP = "carbon-accounts-sink"
WARMUP = "WARMUP"
WINDOWS, LABELS = "emissions.windows", "accounts.labels"
TIMEZONE = Settings().streams.timezone  # the accounts' local calendar (Asia/Shanghai)
#: what each account does across the month boundary (account i is KINDS[i % 3])
KINDS = ("steady", "rising", "falling")
SURGE = 8.0  # rising accounts' consumption in the live readings, x their history rate
HISTORY_SCALE = 1.25  # a history month, x an account's live emissions before the boundary
BAD_MONTH = 7.0  # falling accounts' month a year before the last, x a history month
INDUSTRIES = ("C2614", "C1711")  # chemicals, textiles: the default bands
BENCHMARK = 1.0  # tCO2e per 10k yuan, both industries
_MONTH = timedelta(days=365.2425 / 12)


def _sizes(full: bool) -> dict[str, int]:
    # `pre`: the cycles before the one at the month boundary (cycle `pre` is at it, so no
    # interval straddles it; cycle `pre + 1` closes the month)
    if full:
        # 100,000 meters across 5,000 accounts; cycles x step of event time
        cycles = int(os.environ.get("E2E_CYCLES", "8"))
        assert cycles >= 3, "E2E_CYCLES: at least 3 (one past the month boundary)"
        return {
            "accounts": 5000,
            "meters": 20,
            "cycles": cycles,
            "pre": max(1, min(cycles - 2, cycles // 2)),
            "step_minutes": 60,
            "sample": 50,
            "ceiling": 300_000,
            "naive": 30_000,
            "quix": 100_000,
            "workers": int(os.environ.get("E2E_WORKERS", "1")),
        }
    # 3.25 days of event time, the month boundary after 2.25 of them
    return {
        "accounts": 6,
        "meters": 4,
        "cycles": 14,
        "pre": 9,
        "step_minutes": 360,
        "sample": 1,
        "ceiling": 240,
        "naive": 120,
        "quix": 120,
        "workers": 1,
    }


def _boundary(sizes: dict[str, int]) -> datetime:
    """The local month start (UTC) the readings cross: the latest one that lets the run's
    last cycle be in the past (event time well before now is fine: the readings' Kafka
    timestamps are their publication times)."""
    after = timedelta(minutes=sizes["step_minutes"] * (sizes["cycles"] - 1 - sizes["pre"]))
    last = (datetime.now(UTC) - after).astimezone(ZoneInfo(TIMEZONE))
    return month_start_utc(f"{last:%Y-%m}", TIMEZONE)


def _t0(sizes: dict[str, int]) -> datetime:
    """Event time of the first cycle: `pre` steps before the month boundary."""
    return _boundary(sizes) - timedelta(minutes=sizes["step_minutes"] * sizes["pre"])


def _recent_t0(sizes: dict[str, int]) -> datetime:
    """Event time of the peers' first cycle: their run ends about now (their message
    timestamps are event time, and the broker's retention deletes old ones)."""
    span = timedelta(minutes=sizes["step_minutes"] * sizes["cycles"])
    return datetime.fromtimestamp((time.time() // 3600) * 3600, UTC) - span


def _kind(account: str) -> str:
    return KINDS[int(account[1:]) % len(KINDS)] if account != WARMUP else "steady"


def _cycle(t0: datetime, step: int, account: str, c: int, meters: int) -> list[dict[str, Any]]:
    ts = t0 + timedelta(minutes=step * c)
    rate = SURGE if _kind(account) == "rising" else 1.0
    rows = []
    for m in range(meters):
        et, unit = ENERGY[m % len(ENERGY)]
        rows.append(
            {
                "meter_id": f"{account}-M{m}",
                "account_id": account,
                "energy_type": et,
                "kind": "cumulative",
                "value": 1000.0 + c * (10.0 + m) * rate + len(account),
                "unit": unit,
                "ts": ts,
                "quality": "good",
                "source": "bench",
                "seq": c,
                "counter_max": None,
                "period_start": None,
            }
        )
    return rows


@dataclass(frozen=True)
class _Fleet:
    """The reference data and history the labelling agent gets before the clock."""

    boundary: datetime  # UTC start of the local month the readings enter
    accounts: list[Account]
    denominators: list[Denominator]
    benchmarks: list[Benchmark]
    history: list[EmissionWindow]


def _history_window(account: str, at: datetime, tco2e: float) -> EmissionWindow:
    grid = 0.0005  # tCO2e/kWh; the history's own factor, as the demo's history has
    return EmissionWindow(
        account_id=account,
        energy_type="electricity",
        window_start=at,
        window_end=at + timedelta(minutes=15),
        consumption=tco2e / grid,
        unit="kWh",
        tco2e=tco2e,
        factor_id="bench-history",
        factor_version="bench",
        factor_value=grid,
        factor_unit="tCO2e/kWh",
        revision=1,
    )


def _fleet(sizes: dict[str, int], accounts: list[str], live: float) -> _Fleet:
    """Registry, denominators, benchmarks and a history of the 13 local months before the
    boundary's previous one (plus the bulk of that one), sized on `live`, an account's
    tCO2e at the base rate from the first cycle to the boundary: every month is
    `HISTORY_SCALE x live`, so K = 1.0 (light green) for a steady account before and
    after the boundary, 1 + (SURGE - 1) / (12 x HISTORY_SCALE) (yellow) for a rising one
    after it, and 1.5 (yellow) for a falling one until its bad month leaves the period."""
    boundary = _boundary(sizes)
    month = local_month(boundary, TIMEZONE)
    start = month_start_utc(month_add(month, -14), TIMEZONE)
    end = month_start_utc(month_add(month, 1), TIMEZONE)
    per_month = HISTORY_SCALE * live
    registry, denominators, history = [], [], []
    for i, a in enumerate(accounts):
        registry.append(
            Account(
                account_id=a,
                area="industry",
                name=f"bench {a}",
                region="east_china",
                district="bench",
                industry_code=INDUSTRIES[i % len(INDUSTRIES)],
                denominator_unit="10k_yuan",
                timezone=TIMEZONE,
            )
        )
        # one record over the whole span, prorated by the rule: K = 1 on a history month
        denominators.append(
            Denominator(
                account_id=a,
                period_start=start,
                period_end=end,
                value=per_month / BENCHMARK * ((end - start) / _MONTH),
                unit="10k_yuan",
            )
        )
        for back in range(14, 1, -1):
            m_start = month_start_utc(month_add(month, -back), TIMEZONE)
            bad = back == 13 and _kind(a) == "falling"
            tco2e = per_month * (BAD_MONTH if bad else 1.0)
            history.append(_history_window(a, m_start + timedelta(days=14), tco2e))
        # the last month before the boundary: its bulk; the live readings add the rest
        last = month_start_utc(month_add(month, -1), TIMEZONE)
        history.append(_history_window(a, last, per_month - live))
    benchmarks = [
        Benchmark(
            area="industry",
            industry_code=code[:3],
            region="*",
            period_start=month_start_utc(month_add(month, -26), TIMEZONE),
            period_end=month_start_utc(month_add(month, 12), TIMEZONE),
            value=BENCHMARK,
            unit="tCO2e/10k_yuan",
            source="bench: invented",
            version="bench-v1",
        )
        for code in INDUSTRIES
    ]
    return _Fleet(boundary, registry, denominators, benchmarks, history)


def _readings(sizes: dict[str, int], t0: datetime, accounts: list[str]) -> list[dict[str, Any]]:
    """The readings of `accounts`, every cycle."""
    return [
        r
        for c in range(sizes["cycles"])
        for a in accounts
        for r in _cycle(t0, sizes["step_minutes"], a, c, sizes["meters"])
    ]


def _replay(readings: list[dict[str, Any]], regions: dict[str, str]) -> list[dict[str, Any]]:
    """`carbon-accounts replay` on the readings: the final windows."""
    lines = [json.dumps({**r, "ts": r["ts"].isoformat()}) for r in readings]
    windows, rejected = replay(lines, Settings(), regions=regions)
    assert not rejected
    return windows


@dataclass
class _Run:
    """What the harness saw: publication times, window and label messages, sink commits."""

    published: dict[tuple[str, int], float] = field(default_factory=dict)  # (account, cycle)
    first_publish: float = 0.0
    readings: int = 0
    # (partition, offset) of the first emission of each sampled window
    windows: dict[tuple[str, str, datetime], tuple[int, int]] = field(default_factory=dict)
    # (account, revision) -> (partition, offset, period_end) of every label
    labels: dict[tuple[str, int], tuple[int, int, datetime]] = field(default_factory=dict)
    # the sink's committed offsets per topic, at each poll
    commits: list[tuple[float, dict[str, dict[int, int]]]] = field(default_factory=list)
    stored_at: float = 0.0
    worker_done: float = 0.0  # first poll that saw the workers' input offsets committed


def _env(bootstrap: str, data: Path, app_id: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CARBON_ACCOUNTS_DATA_DIR": str(data),
        "CARBON_ACCOUNTS_STREAMS_APP_ID": app_id,
        "CARBON_ACCOUNTS_STREAMS_WEB_PORT": str(free_port()),
        "CARBON_ACCOUNTS_METRICS_ENABLED": "false",
    }


def _start(
    args: list[str], env: dict[str, str], log: Path, profile: Path | None = None
) -> subprocess.Popen[bytes]:
    """`carbon-accounts ARGS`; under pyinstrument (text report to `profile`) if given."""
    wrap = ["-m", "pyinstrument", "-o", str(profile)] if profile else []
    with log.open("w") as f:
        return subprocess.Popen(
            [sys.executable, *wrap, "-m", "streams", *args],
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
        )


def _proc_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds, peak RSS bytes) of a live process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / tick  # utime, stime
    hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return cpu, hwm


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _committed(admin: AIOKafkaAdminClient, group: str) -> dict[str, dict[int, int]]:
    """A group's committed offsets, per topic and partition."""
    out: dict[str, dict[int, int]] = {}
    for tp, meta in (await admin.list_consumer_group_offsets(group)).items():
        out.setdefault(tp.topic, {})[tp.partition] = meta.offset
    return out


async def _ends(consumer: AIOKafkaConsumer, topic: str) -> dict[int, int]:
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    return {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}


def _covers(committed: dict[int, int], ends: dict[int, int]) -> bool:
    return all(committed.get(p, 0) >= o for p, o in ends.items())


def _messages(
    sizes: dict[str, int], t0: datetime, accounts: list[str]
) -> list[list[tuple[str, bytes]]]:
    """Per cycle, each account's Arrow batch of readings (account, value), built before
    the clock: the collectors that build them run on other machines, and building costs
    this process ~17 µs a reading (pyarrow's per-call cost), CPU the pipeline would not
    have on the clock."""
    return [
        [
            (a, to_arrow(Reading, _cycle(t0, sizes["step_minutes"], a, c, sizes["meters"])))
            for a in accounts
        ]
        for c in range(sizes["cycles"])
    ]


async def _publish(
    bootstrap: str, sizes: dict[str, int], messages: list[list[tuple[str, bytes]]], run: _Run
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20, **_PRODUCER
    )
    pace = float(os.environ.get("E2E_PACE", "0"))  # readings/s; 0: as fast as it goes
    await producer.start()
    try:
        for c, batches in enumerate(messages):
            for account, value in batches:
                await producer.send(
                    "meter.readings",
                    value,
                    key=account.encode(),
                    headers=[(FORMAT_HEADER, ARROW_FORMAT)],
                )
                now = time.time()
                run.first_publish = run.first_publish or now
                run.published[(account, c)] = now
                run.readings += sizes["meters"]
                if pace:  # a load below saturation: latency without queueing
                    ahead = run.first_publish + run.readings / pace - now
                    if ahead > 0.005:
                        await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()


def _see(run: _Run, tp: TopicPartition, records: Iterable[Any], sampled: set[str]) -> None:
    # note where each sampled window's first emission and each label went
    wanted = pa.array(list(sampled))  # once per fetch, not per message
    for r in records:
        if tp.topic == LABELS:
            label = json.loads(r.value)
            end = datetime.fromisoformat(label["period_end"])
            run.labels[(label["account_id"], label["revision"])] = (tp.partition, r.offset, end)
            continue
        # Arrow batches of windows (what the worker sends) or JSON windows; rows as
        # plain dicts: this process shares the cores with the pipeline
        if message_format(r.headers) == ARROW_FORMAT:
            table = from_arrow(r.value)  # the sampled accounts' rows only
            rows = table.filter(pc.is_in(table["account_id"], wanted)).to_pylist()
        else:
            rows = [decode_json(EmissionWindow, r.value).asdict()]
        for w in rows:
            if w["account_id"] in sampled:
                key = (w["account_id"], w["energy_type"], w["window_start"])
                run.windows.setdefault(key, (tp.partition, r.offset))


async def _follow(
    bootstrap: str,
    sampled: set[str],
    run: _Run,
    app_id: str,
    published: asyncio.Event,
    procs: list[subprocess.Popen[bytes]],
    timeout: float,
    windows_from: dict[int, int],
) -> None:
    """Follow emissions.windows (sampled accounts, from `windows_from`: the history's are
    not decoded on the clock), accounts.labels and the sink's commits until every window
    and label is stored."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        tps = [TopicPartition(t, p) for t in (WINDOWS, LABELS) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps[PARTITIONS:])
        for p, offset in windows_from.items():
            consumer.seek(TopicPartition(WINDOWS, p), offset)
        deadline = time.monotonic() + timeout
        windows_end: dict[int, int] | None = None  # once the accounting is done
        final: dict[str, dict[int, int]] | None = None  # once the labelling is done too
        while time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), "a worker or the sink exited"
            for tp, records in (await consumer.getmany(timeout_ms=100)).items():
                _see(run, tp, records, sampled)
            now = time.time()
            commits = await _committed(admin, SINK_GROUP)
            run.commits.append((now, commits))
            if not published.is_set():
                continue
            if windows_end is None:
                # the workers' accounting is done when their group committed the end of
                # the input (Faust flushes its producer before it commits)
                done = (await _committed(admin, app_id)).get("meter.readings", {})
                if _covers(done, await _ends(consumer, "meter.readings")):
                    windows_end = await _ends(consumer, WINDOWS)
                    run.worker_done = now
            elif final is None:
                # ... and their labelling when they committed every window (a label is
                # stored by the broker before the window behind it is acked)
                done = (await _committed(admin, app_id)).get(WINDOWS, {})
                if _covers(done, windows_end):
                    final = {WINDOWS: windows_end, LABELS: await _ends(consumer, LABELS)}
            elif all(_covers(commits.get(t, {}), o) for t, o in final.items()):
                # the first poll that saw the last window stored
                for t, seen in run.commits:
                    if _covers(seen.get(WINDOWS, {}), final[WINDOWS]):
                        run.stored_at = t
                        break
                # the labels the stored offsets cover, read to their end (bounded by
                # the deadline, as the loop around)
                for p, o in final[LABELS].items():
                    tp = TopicPartition(LABELS, p)
                    while await consumer.position(tp) < o and time.monotonic() < deadline:
                        for got, records in (await consumer.getmany(timeout_ms=100)).items():
                            _see(run, got, records, sampled)
                return
        raise AssertionError(f"not all windows and labels stored in {timeout:.0f} s")
    finally:
        await consumer.stop()
        await admin.close()


async def _until(
    admin: AIOKafkaAdminClient, group: str, want: dict[str, int], timeout: float, what: str
) -> None:
    """Poll until `group` committed at least `want[topic]` messages of each topic."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await _committed(admin, group)
        if all(sum(got.get(t, {}).values()) >= n for t, n in want.items()):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not committed in {timeout:.0f} s (want {want})")


async def _prepare(
    bootstrap: str, app_id: str, fleet: _Fleet, t0: datetime, timeout: float
) -> dict[int, int]:
    """Before the clock: the warm-up account proves the accounting path live; then the
    labelling agent has read the reference data, and the labels of the history are stored.
    Returns the end offsets of emissions.windows: where the run's windows start.

    The labelling agent takes windows, registry and denominators from one stream in no
    set order across topics: the history goes out only once the reference data is
    committed, so every account has its registry entry, denominator and benchmark when
    its first window arrives (and the labels are those `_expected_labels` computes).
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **_PRODUCER)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await producer.start()
    await admin.start()
    await consumer.start()
    try:
        for c in range(2):
            value = to_arrow(Reading, _cycle(t0, 60, WARMUP, c, 1))
            await producer.send_and_wait(
                "meter.readings",
                value,
                key=WARMUP.encode(),
                headers=[(FORMAT_HEADER, ARROW_FORMAT)],
            )
        await _until(admin, SINK_GROUP, {WINDOWS: 1}, timeout, "warm-up window stored")
        fanout = f"{app_id}-labelling-benchmarks"  # every benchmark to every partition
        reference = {
            "accounts.registry": len(fleet.accounts),
            "accounts.denominators": len(fleet.denominators),
            "benchmarks": len(fleet.benchmarks),
            fanout: len(fleet.benchmarks) * PARTITIONS,
        }
        await _until(admin, app_id, reference, timeout, "reference data read by the workers")
        windows = sum((await _ends(consumer, WINDOWS)).values())
        history = [(w.account_id, w, None) for w in fleet.history]
        await produce(bootstrap, WINDOWS, history, **_PRODUCER)
        windows += len(fleet.history)
        await _until(admin, app_id, {WINDOWS: windows}, timeout, "history labelled")
        labels = sum((await _ends(consumer, LABELS)).values())
        assert labels > 0, "the history gave no label"
        await _until(admin, SINK_GROUP, {LABELS: labels}, timeout, "history labels stored")
        return await _ends(consumer, WINDOWS)
    finally:
        await producer.stop()
        await admin.close()
        await consumer.stop()


def _latencies(run: _Run, t0: datetime, step: int) -> list[float]:
    """Publication of the creating batch → first poll that saw its window stored."""
    out = []
    for (account, _et, start), (partition, offset) in run.windows.items():
        if account == WARMUP:
            continue
        ws = start
        # cumulative readings: the interval (c-1, c] makes the windows in it
        c = math.floor((ws - t0) / timedelta(minutes=step)) + 1
        sent = run.published.get((account, c))
        stored = next(
            (t for t, seen in run.commits if seen.get(WINDOWS, {}).get(partition, 0) > offset),
            None,
        )
        if sent is not None and stored is not None:
            out.append(stored - sent)
    return out


def _label_latencies(run: _Run, boundary: datetime, closing: int) -> list[float]:
    """Publication of the batch that closed the period (cycle `closing`: its windows open
    the boundary's month) → first poll that saw the label stored; the run's labels only."""
    out = []
    for (account, _rev), (partition, offset, end) in run.labels.items():
        if end != boundary:
            continue  # the history's
        sent = run.published[(account, closing)]
        stored = next(
            (t for t, seen in run.commits if seen.get(LABELS, {}).get(partition, 0) > offset),
            None,
        )
        assert stored is not None, f"label of {account} never seen stored"
        out.append(stored - sent)
    return out


async def _produce_json(bootstrap: str, topic: str, readings: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, **_PRODUCER
    )
    await producer.start()
    try:
        for r in readings:
            await producer.send(
                topic,
                json.dumps({**r, "ts": r["ts"].isoformat()}).encode(),
                key=r["account_id"].encode(),
                headers=[(FORMAT_HEADER, JSON_FORMAT)],
                timestamp_ms=int(r["ts"].timestamp() * 1000),
            )
        await producer.flush()
    finally:
        await producer.stop()


def _stored(data: Path, windows: bool) -> dict[str, list[dict[str, Any]]]:
    """The labels (and final windows) the sink stored, read in a subprocess (chdb: one
    engine a process)."""
    code = (
        "import json,sys\n"
        "from schemas.settings import Settings\n"
        "from sinks.store import open_store\n"
        "s = open_store(Settings(data_dir=sys.argv[1]))\n"
        "out = {}\n"
        "for name, sql in json.loads(sys.argv[2]).items():\n"
        "    r = s.query(sql)\n"
        "    out[name] = [dict(zip(r.column_names, row)) for row in r.result_rows]\n"
        "print(json.dumps(out, default=str))\n"
        "s.close()\n"
    )
    queries = {
        "labels": "SELECT account_id, revision, old_colour, new_colour, k, intensity, "
        "benchmark, benchmark_version, period_start, period_end, reason "
        "FROM account_labels FINAL ORDER BY account_id, revision",
    }
    if windows:
        queries["windows"] = (
            "SELECT account_id, energy_type, window_start, consumption, tco2e, "
            "factor_id, uncertain FROM emissions_15m FINAL ORDER BY 1, 2, 3"
        )
    out = subprocess.run(
        [sys.executable, "-c", code, str(data), json.dumps(queries)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _utc(value: Any) -> datetime:
    ts = datetime.fromisoformat(str(value).replace(" ", "T"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _window_key(w: dict[str, Any]) -> tuple[str, str, datetime]:
    return w["account_id"], w["energy_type"], _utc(w["window_start"])


def _check_replay(stored: list[dict[str, Any]], expected: list[dict[str, Any]]) -> int:
    """Stored windows (the history aside) == replay's on the same readings (consumption,
    tCO2e, factor)."""
    want = {_window_key(w): w for w in expected}
    got = {_window_key(w): w for w in stored if w["factor_id"] != "bench-history"}
    assert set(got) == set(want), sorted(set(got) ^ set(want))[:5]
    for key, w in want.items():
        g = got[key]
        assert g["factor_id"] == w["factor_id"], key
        assert math.isclose(g["consumption"], w["consumption"], rel_tol=1e-9), key
        assert math.isclose(g["tco2e"], w["tco2e"], rel_tol=1e-9, abs_tol=1e-12), key
    return len(want)


def _monthly(windows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """tCO2e per account and local month ("YYYY-MM") of `windows`."""
    out: dict[str, dict[str, float]] = {}
    for w in windows:
        months = out.setdefault(w["account_id"], {})
        month = local_month(_utc(w["window_start"]), TIMEZONE)
        months[month] = months.get(month, 0.0) + w["tco2e"]
    return out


def _expected_labels(fleet: _Fleet, monthly: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The labels the pure rules give each account of the fleet on its `monthly` tCO2e
    (the history and the replayed windows), evaluated as each month closes: its first
    window opens the next.

    The windows of an account reach the labelling agent in event-time order (the history
    by month, then the readings' cycles; each cycle's windows lie on one side of the
    boundary), so a month is whole when it closes.
    """
    rules = load_rulebook(Settings())
    benchmarks = [benchmark_value(b) for b in fleet.benchmarks]
    denominators = {d.account_id: [denominator_value(d)] for d in fleet.denominators}
    out = []
    for a in fleet.accounts:
        months = monthly.get(a.account_id, {})
        previous: LabelState | None = None
        for latest in sorted(months):
            evaluation = evaluate(
                monthly_tco2e={m: v for m, v in months.items() if m <= latest},
                latest_month=latest,
                timezone=a.timezone,
                area=a.area,
                industry_code=a.industry_code,
                region=a.region,
                denominators=denominators[a.account_id],
                benchmarks=benchmarks,
                rule=rules.rule_for(a.area, a.industry_code),
                previous=previous,
            )
            previous, reason = decide(previous, evaluation, LabelReason.EMISSIONS_CHANGE)
            if reason is None:
                continue
            out.append(
                {
                    "account_id": a.account_id,
                    "revision": previous.revision,
                    "new_colour": previous.colour.value if previous.colour else None,
                    "k": evaluation.k,
                    "intensity": evaluation.intensity,
                    "benchmark": evaluation.benchmark,
                    "benchmark_version": evaluation.benchmark_version,
                    "period_start": evaluation.period_start,
                    "period_end": evaluation.period_end,
                    "reason": reason.value,
                }
            )
    # old colour: the previous label's new one
    before: dict[str, str | None] = {}
    for label in out:
        label["old_colour"] = before.get(label["account_id"])
        before[label["account_id"]] = label["new_colour"]
    return out


def _check_labels(stored: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Stored labels (ClickHouse) == the rules' on the replayed windows, field by field."""
    want = {(x["account_id"], int(x["revision"])): x for x in expected}
    got = {(x["account_id"], int(x["revision"])): x for x in stored}
    assert set(got) == set(want), sorted(set(got) ^ set(want))[:5]
    for key, w in want.items():
        g = got[key]
        for f in ("old_colour", "new_colour", "benchmark_version", "reason"):
            assert g[f] == w[f], (key, f, g[f], w[f])
        for f in ("period_start", "period_end"):
            assert _utc(g[f]) == w[f], (key, f, g[f], w[f])
        for f in ("k", "intensity", "benchmark"):
            if w[f] is None:
                assert g[f] is None, (key, f, g[f])
            else:
                assert g[f] is not None and math.isclose(g[f], w[f], rel_tol=1e-9), (key, f)


@pytest.mark.bench
@pytest.mark.timeout(1800)  # full size: minutes (the suite's default is 300 s)
def test_e2e_throughput(bench_full: bool, tmp_path: Path, unique: str) -> None:
    sizes = _sizes(bench_full)
    t0 = _t0(sizes)
    step = sizes["step_minutes"]
    accounts = [f"A{a}" for a in range(sizes["accounts"])]
    sampled = {a for i, a in enumerate(accounts) if i % sizes["sample"] == 0} | {WARMUP}
    regions = {a: "east_china" for a in accounts}  # as the registry says
    # an account of each kind through the replay: the live emissions size the history,
    # and (full size) give every account of the kind its windows
    kinds = {_kind(a): a for a in reversed(accounts)}
    by_kind = {k: _replay(_readings(sizes, t0, [a]), regions) for k, a in kinds.items()}
    boundary = _boundary(sizes)
    live = sum(w["tco2e"] for w in by_kind["steady"] if _utc(w["window_start"]) < boundary)
    fleet = _fleet(sizes, accounts, live)
    app_id = f"e2e-{unique}"
    run = _Run()
    usage: dict[str, tuple[float, int]] = {}
    peers: dict[str, float] = {}
    with EmbeddedBroker(tmp_path / "kafka", log_file=tmp_path / "broker.log") as broker:
        bootstrap = broker.bootstrap
        settings = Settings(data_dir=str(tmp_path / "var"))
        settings.kafka.partitions = PARTITIONS
        asyncio.run(create_topics(settings, bootstrap))

        async def _reference() -> None:
            # before the workers start: their accounting reads the regions at start-up
            await produce(
                bootstrap,
                "accounts.registry",
                [(a.account_id, a, None) for a in fleet.accounts],
                **_PRODUCER,
            )
            await produce(
                bootstrap,
                "accounts.denominators",
                [(denominator_key(d), d, d.account_id) for d in fleet.denominators],
                **_PRODUCER,
            )
            await produce(
                bootstrap,
                "benchmarks",
                [(benchmark_key(b), b, None) for b in fleet.benchmarks],
                **_PRODUCER,
            )

        asyncio.run(_reference())
        sink_data = tmp_path / "sink"
        sink = _start(["sink"], _env(bootstrap, sink_data, app_id), tmp_path / "sink.log")
        workers = [
            _start(
                ["worker"],
                _env(bootstrap, tmp_path / f"worker{i}", app_id),
                tmp_path / f"worker{i}.log",
                # E2E_PROFILE=1: profile the first worker (the rates are then not comparable)
                ROOT / "var" / "bench" / "e2e-worker0-profile.txt"
                if i == 0 and os.environ.get("E2E_PROFILE")
                else None,
            )
            for i in range(sizes["workers"])
        ]
        procs = [sink, *workers]
        try:
            start = asyncio.run(_prepare(bootstrap, app_id, fleet, t0 - timedelta(hours=1), 120))
            timeout = 120 + sizes["accounts"] * sizes["meters"] * sizes["cycles"] / 1_000

            messages = _messages(sizes, t0, accounts)
            # CPU on the clock only: start-up (imports, chdb, Faust) is not per reading
            assert broker._proc is not None
            broker_pid = broker._proc.pid
            before = {pid: _proc_usage(pid)[0] for pid in [broker_pid, *(p.pid for p in procs)]}
            bench_start = time.process_time()

            async def _both() -> None:
                published = asyncio.Event()
                follow = asyncio.create_task(
                    _follow(bootstrap, sampled, run, app_id, published, procs, timeout, start)
                )
                await _publish(bootstrap, sizes, messages, run)
                published.set()
                await follow

            # the observer's consumer spins on the embedded broker, as the worker's and
            # the sink's would without it (infra/fetch_backoff.py): ~1 CPU s a second
            fetch_backoff.install()
            try:
                asyncio.run(_both())
            finally:
                fetch_backoff.uninstall()
            # this process on the clock: the producer's sends and the observer's reads
            bench_cpu = time.process_time() - bench_start
            for name, p in [("sink", sink)] + [(f"worker{i}", w) for i, w in enumerate(workers)]:
                cpu, rss = _proc_usage(p.pid)
                usage[name] = (cpu - before[p.pid], rss)
            cpu, rss = _proc_usage(broker_pid)
            usage["broker"] = (cpu - before[broker_pid], rss)
        finally:
            for p in procs:
                _stop(p)
        stored = _stored(sink_data, windows=not bench_full)
        if bench_full:
            # the accounts of a kind have the same consumption: their kind's months
            of_kind = {k: _monthly(ws)[kinds[k]] for k, ws in by_kind.items()}
            monthly = {a: dict(of_kind[_kind(a)]) for a in accounts}
        else:
            warmup = [
                r for c in range(2) for r in _cycle(t0 - timedelta(hours=1), 60, WARMUP, c, 1)
            ]
            replayed = _replay(warmup + _readings(sizes, t0, accounts), regions)
            n = _check_replay(stored["windows"], replayed)
            print(f"ClickHouse == replay: {n} windows", flush=True)
            monthly = _monthly(replayed)
        for a, months in _monthly(w.asdict() for w in fleet.history).items():
            mine = monthly.setdefault(a, {})
            for m, v in months.items():
                mine[m] = mine.get(m, 0.0) + v
        expected = _expected_labels(fleet, monthly)
        _check_labels(stored["labels"], expected)
        print(f"ClickHouse == the rules on the replay: {len(expected)} labels", flush=True)
        # the peers, on the same broker, after ours: a prefix of the same readings as JSON
        if os.environ.get("E2E_PEERS", "1") == "0":  # a profiling run: ours only
            sizes["ceiling"] = sizes["naive"] = sizes["quix"] = 0
        if max(sizes["ceiling"], sizes["naive"], sizes["quix"]):
            peers = _peers(bootstrap, sizes, accounts, _recent_t0(sizes), unique, tmp_path)
    seconds = run.stored_at - run.first_publish
    rate = run.readings / seconds
    lat = sorted(_latencies(run, t0, step))
    assert lat, "no sampled window latency"
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    label_lat = sorted(_label_latencies(run, boundary, sizes["pre"] + 1))
    changes = [
        x for x in expected if x["period_end"] == boundary and x["old_colour"] and x["new_colour"]
    ]
    # the run changed colours as the fleet is built to (steady accounts keep theirs),
    # and each change was timed
    assert changes, "no colour changed during the run"
    turns = {"rising": ("light_green", "yellow"), "falling": ("yellow", "light_green")}
    assert {(x["account_id"], x["old_colour"], x["new_colour"]) for x in changes} == {
        (a, *turns[_kind(a)]) for a in accounts if _kind(a) in turns
    }
    assert len(label_lat) == sum(x["period_end"] == boundary for x in expected)
    cpu = sum(u[0] for k, u in usage.items() if k != "broker")
    result = {
        "sizes": sizes,
        "readings": run.readings,
        "seconds": seconds,
        "rate": rate,
        "p50": p50,
        "p99": p99,
        "latency_samples": len(lat),
        "label_p50": statistics.median(label_lat),
        "label_p99": label_lat[min(len(label_lat) - 1, int(0.99 * len(label_lat)))],
        "label_changes": len(label_lat),
        "colour_changes": {
            f"{a} -> {b}": sum(x["old_colour"] == a and x["new_colour"] == b for x in changes)
            for a, b in sorted({(x["old_colour"], x["new_colour"]) for x in changes})
        },
        "labels_checked": len(expected),
        "cpu_per_m": cpu / run.readings * 1e6,
        # the workers alone (input committed; Faust commits every few seconds): is the
        # sink behind them?
        "worker_rate": run.readings / (run.worker_done - run.first_publish),
        "usage": usage,
        "bench_cpu": bench_cpu,
        "peers": peers,
    }
    table = _table(result, bench_full)
    print("\n" + table, flush=True)
    if bench_full:
        out = ROOT / "var" / "bench"
        out.mkdir(parents=True, exist_ok=True)
        # E2E_TAG: a side run (more workers, a profile) that must not replace the table
        name = f"e2e-{os.environ['E2E_TAG']}" if os.environ.get("E2E_TAG") else "e2e"
        (out / f"{name}.md").write_text(table)
        (out / f"{name}.json").write_text(json.dumps(result, indent=1))
        _chart(result, out / f"{name}.png")
    else:
        _chart(result, tmp_path / "e2e.png")  # the chart's code runs in make test too
    assert rate > 0 and all(v > 0 for v in peers.values())


def _peers(
    bootstrap: str,
    sizes: dict[str, int],
    accounts: list[str],
    t0: datetime,
    unique: str,
    tmp: Path,
) -> dict[str, float]:
    """Readings/s of the ceiling, naive Faust and Quix on a prefix of the same readings."""
    json_n = max(sizes["ceiling"], sizes["naive"], sizes["quix"])
    readings: list[dict[str, Any]] = []
    for c in range(sizes["cycles"]):
        for a in accounts:
            if len(readings) < json_n:
                readings.extend(_cycle(t0, sizes["step_minutes"], a, c, sizes["meters"]))
    topic = f"bench.e2e.json.{unique}"
    asyncio.run(ensure_topics(bootstrap, [(topic, PARTITIONS, False)]))
    asyncio.run(_produce_json(bootstrap, topic, readings[:json_n]))
    return {
        "ceiling": _script(
            [str(HERE / "_ceiling.py"), bootstrap, topic, str(sizes["ceiling"])], 300
        ),
        "naive": _script(
            [
                str(HERE / "_naive_faust.py"),
                bootstrap,
                topic,
                f"naive-{unique}",
                str(sizes["naive"]),
                str(PARTITIONS),
            ],
            300,
        ),
        "quix": _script(
            [
                str(HERE / "_quix.py"),
                bootstrap,
                topic,
                f"quix-{unique}",
                str(sizes["quix"]),
                str(tmp / "quix"),
            ],
            300,
        ),
    }


def _table(r: dict[str, Any], full: bool) -> str:
    s = r["sizes"]
    mb = 1 << 20
    lines = [
        f"# End-to-end benchmark ({'full' if full else 'tiny'}), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{s['accounts']} accounts x {s['meters']} meters = {s['accounts'] * s['meters']:,} "
        f"meters, {s['cycles']} cycles {s['step_minutes']} min apart "
        f"({r['readings']:,} readings, {s['meters']} per Arrow message), {PARTITIONS} "
        f"partitions, {s['workers']} worker process(es) + 1 sink, one run; latency sampled "
        f"on every {s['sample']}th account ({r['latency_samples']:,} windows), published "
        + (
            f"at {float(os.environ['E2E_PACE']):,.0f} readings/s (E2E_PACE)"
            if float(os.environ.get("E2E_PACE", "0"))
            else "at full speed (a saturating load: latency includes queueing)"
        ),
        "",
        "| system | readings/s | p50 publish→stored s | p99 s | CPU s / 1M readings |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| ours: worker(s) + sink → ClickHouse, end to end | {r['rate']:,.0f} | "
        f"{r['p50']:.2f} | {r['p99']:.2f} | {r['cpu_per_m']:.1f} |",
        f"| ours: worker(s) alone, input offsets committed | {r['worker_rate']:,.0f} | | | |",
        f"| ours: label changes ({r['label_changes']:,}), publication of the reading that "
        f"closes the period → label stored | | {r['label_p50']:.2f} | {r['label_p99']:.2f} | |",
        f"| ceiling: raw aiokafka + json.loads ({s['ceiling']:,} msgs) | "
        f"{r['peers'].get('ceiling', 0.0):,.0f} | | | |",
        f"| (a) naive Faust, per-event windowed table ({s['naive']:,} msgs) | "
        f"{r['peers'].get('naive', 0.0):,.0f} | | | |",
        f"| (b) Quix Streams tumbling window ({s['quix']:,} msgs) | "
        f"{r['peers'].get('quix', 0.0):,.0f} | | | |",
        "",
        "Labels: the readings cross a local month boundary, closing the last month of every "
        "account's trailing 12; colour changes "
        + ", ".join(f"{k}: {v:,}" for k, v in r["colour_changes"].items())
        + f"; {r['labels_checked']:,} labels in ClickHouse (with the history's) equal the "
        "pure rules on the replayed windows.",
        "",
        "| process | CPU s (on the clock) | peak RSS MiB |",
        "| --- | ---: | ---: |",
    ]
    for name, (cpu, rss) in r["usage"].items():
        lines.append(f"| {name} | {cpu:.1f} | {rss / mb:.0f} |")
    # the load generator's sends and the observer: not ours, on the same cores
    lines.append(f"| this bench (publisher + observer) | {r['bench_cpu']:.1f} | |")
    return "\n".join(lines) + "\n"


def _chart(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["ours e2e", "ceiling", "naive Faust", "Quix"]
    rates = [
        r["rate"],
        r["peers"].get("ceiling", 0.0),
        r["peers"].get("naive", 0.0),
        r["peers"].get("quix", 0.0),
    ]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.bar(names, rates, color=["tab:green", "tab:gray", "tab:red", "tab:blue"])
    a.set_yscale("symlog")
    a.set_ylabel("readings/s (log)")
    a.set_title("throughput")
    b.bar(
        ["window p50", "window p99", "label p50", "label p99"],
        [r["p50"], r["p99"], r["label_p50"], r["label_p99"]],
        color=["tab:green", "tab:green", "tab:olive", "tab:olive"],
    )
    b.set_ylabel("seconds")
    b.set_title("ours: publication → stored in ClickHouse")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
