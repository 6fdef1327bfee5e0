"""Benchmark: readings end to end, meter.readings → worker(s) → sink → ClickHouse (issue 8).

One embedded broker, the real `carbon-accounts worker` and `carbon-accounts sink`
subprocesses (the sink owns its chdb directory), and a load generator in this process:

- the fleet: accounts x meters, cumulative readings every `step` of event time, spanning
  more than the 6 h grace so that windows close; one Arrow batch per account per cycle
  on `meter.readings` (key account_id), published as fast as the producer goes while the
  pipeline runs (a warm-up account first proves the pipeline is live before the clock);
- throughput: readings published / (time from the first publication to the moment the
  sink's committed offset on `emissions.windows` covers the last window);
- latency (sampled: every `sample`-th account): for each window's first emission, the
  publication time of the batch that created it (the cycle whose interval holds the
  window) to the first poll (every 100 ms) that sees the sink's committed offset past the
  window's message: the sink commits only after the batch is in ClickHouse, so this is
  "stored", to within the poll interval and the sink's `batch_seconds`;
- CPU seconds and peak RSS (VmHWM) per process from /proc, read just before stopping;
- the peers on the same readings as JSON (one reading per message, a prefix of the
  fleet's readings): the ceiling (raw aiokafka + json.loads), the naive Faust agent and
  Quix Streams (tests/bench/_naive_faust.py, _quix.py), rates as in test_accounting_bench.

The tiny run (make test) also checks the windows stored in ClickHouse equal
`carbon-accounts replay` on the same readings. Full size (make bench) writes
var/bench/e2e.md and var/bench/e2e.png. Knobs for side runs (environment): E2E_CYCLES
(default 8: 800,000 readings over 8 h of event time), E2E_WORKERS (worker processes in
the group, default 1), E2E_PEERS=0 (ours only), E2E_PROFILE=1 (the first worker under
pyinstrument, report in var/bench/e2e-worker0-profile.txt), E2E_TAG (write
var/bench/e2e-TAG.* instead).
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.broker import EmbeddedBroker, ensure_topics, free_port
from schemas.codec import (
    ARROW_FORMAT,
    FORMAT_HEADER,
    JSON_FORMAT,
    arrow_rows,
    decode_json,
    message_format,
    to_arrow,
)
from schemas.contracts import EmissionWindow, Reading
from schemas.settings import Settings
from streams.cli.replay_cmd import replay
from streams.runtime import create_topics
from tests.bench.test_accounting_bench import _script

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
PARTITIONS = 4
ENERGY = [("electricity", "kWh"), ("natural_gas", "Nm3"), ("steam", "GJ")]
SINK_GROUP = "carbon-accounts-sink"
WARMUP = "WARMUP"


def _sizes(full: bool) -> dict[str, int]:
    if full:
        # 100,000 meters across 5,000 accounts; cycles x step of event time
        return {
            "accounts": 5000,
            "meters": 20,
            "cycles": int(os.environ.get("E2E_CYCLES", "8")),
            "step_minutes": 60,
            "sample": 50,
            "ceiling": 300_000,
            "naive": 30_000,
            "quix": 100_000,
            "workers": int(os.environ.get("E2E_WORKERS", "1")),
        }
    return {
        "accounts": 6,
        "meters": 4,
        "cycles": 10,
        "step_minutes": 60,
        "sample": 1,
        "ceiling": 240,
        "naive": 120,
        "quix": 120,
        "workers": 1,
    }


def _t0(sizes: dict[str, int]) -> datetime:
    """Event time of the first cycle: the run ends about now (the broker's retention
    deletes messages whose timestamps are old)."""
    span = timedelta(minutes=sizes["step_minutes"] * sizes["cycles"])
    return datetime.fromtimestamp((time.time() // 3600) * 3600, UTC) - span


def _cycle(t0: datetime, step: int, account: str, c: int, meters: int) -> list[dict[str, Any]]:
    ts = t0 + timedelta(minutes=step * c)
    rows = []
    for m in range(meters):
        et, unit = ENERGY[m % len(ENERGY)]
        rows.append(
            {
                "meter_id": f"{account}-M{m}",
                "account_id": account,
                "energy_type": et,
                "kind": "cumulative",
                "value": 1000.0 + c * (10.0 + m) + len(account),
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


@dataclass
class _Run:
    """What the harness saw: publication times, window messages, sink commits."""

    published: dict[tuple[str, int], float] = field(default_factory=dict)  # (account, cycle)
    first_publish: float = 0.0
    readings: int = 0
    # (partition, offset) of the first emission of each sampled window
    windows: dict[tuple[str, str, datetime], tuple[int, int]] = field(default_factory=dict)
    commits: list[tuple[float, dict[int, int]]] = field(default_factory=list)
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


async def _committed(admin: AIOKafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    offsets = await admin.list_consumer_group_offsets(group)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def _ends(consumer: AIOKafkaConsumer, topic: str) -> dict[int, int]:
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    return {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}


async def _publish(
    bootstrap: str, sizes: dict[str, int], t0: datetime, run: _Run, accounts: list[str]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        for c in range(sizes["cycles"]):
            # build one cycle at a time: the generator's cost stays off the clock's books
            # only as much as the producer's own
            batches = [
                (a, to_arrow(Reading, _cycle(t0, sizes["step_minutes"], a, c, sizes["meters"])))
                for a in accounts
            ]
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
        await producer.flush()
    finally:
        await producer.stop()


async def _follow(
    bootstrap: str,
    sampled: set[str],
    run: _Run,
    app_id: str,
    published: asyncio.Event,
    procs: list[subprocess.Popen[bytes]],
    timeout: float,
) -> None:
    """Follow emissions.windows (sampled accounts) and the sink's commits until all stored."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        tps = [TopicPartition("emissions.windows", p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        final: dict[int, int] | None = None
        while time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), "a worker or the sink exited"
            for tp, records in (await consumer.getmany(timeout_ms=100)).items():
                for r in records:
                    # Arrow batches of windows (what the worker sends) or JSON windows;
                    # rows as plain dicts: this process shares the cores with the pipeline
                    if message_format(r.headers) == ARROW_FORMAT:
                        rows = arrow_rows(r.value)
                    else:
                        rows = [decode_json(EmissionWindow, r.value).asdict()]
                    for w in rows:
                        if w["account_id"] in sampled:
                            key = (w["account_id"], w["energy_type"], w["window_start"])
                            run.windows.setdefault(key, (tp.partition, r.offset))
            now = time.time()
            commits = await _committed(admin, SINK_GROUP, "emissions.windows")
            run.commits.append((now, commits))
            if not published.is_set():
                continue
            if final is None:
                # the workers are done when their group committed the end of the input
                # (Faust flushes its producer before it commits)
                done = await _committed(admin, app_id, "meter.readings")
                ends = await _ends(consumer, "meter.readings")
                if all(done.get(p, 0) >= o for p, o in ends.items()):
                    final = await _ends(consumer, "emissions.windows")
                    run.worker_done = now
            elif all(commits.get(p, 0) >= o for p, o in final.items()):
                # the first poll that saw the last window stored
                for t, seen in run.commits:
                    if all(seen.get(p, 0) >= o for p, o in final.items()):
                        run.stored_at = t
                        return
        raise AssertionError(f"not all windows stored in {timeout:.0f} s")
    finally:
        await consumer.stop()
        await admin.close()


async def _warmup(bootstrap: str, t0: datetime, timeout: float) -> None:
    """Two cycles of a warm-up account; wait until the sink stored a window of it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await producer.start()
    await admin.start()
    try:
        for c in range(2):
            value = to_arrow(Reading, _cycle(t0, 60, WARMUP, c, 1))
            await producer.send_and_wait(
                "meter.readings",
                value,
                key=WARMUP.encode(),
                headers=[(FORMAT_HEADER, ARROW_FORMAT)],
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum((await _committed(admin, SINK_GROUP, "emissions.windows")).values()) > 0:
                return
            await asyncio.sleep(0.2)
        raise AssertionError("warm-up window never stored")
    finally:
        await producer.stop()
        await admin.close()


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
        stored = next((t for t, seen in run.commits if seen.get(partition, 0) > offset), None)
        if sent is not None and stored is not None:
            out.append(stored - sent)
    return out


async def _produce_json(bootstrap: str, topic: str, readings: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
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


def _stored_windows(data: Path) -> list[dict[str, Any]]:
    """The final windows the sink stored, read in a subprocess (chdb: one engine a process)."""
    code = (
        "import json,sys\n"
        "from schemas.settings import Settings\n"
        "from sinks.store import open_store\n"
        "s = open_store(Settings(data_dir=sys.argv[1]))\n"
        "r = s.query('SELECT account_id, energy_type, window_start, consumption, tco2e, "
        "factor_id, uncertain FROM emissions_15m FINAL ORDER BY 1, 2, 3')\n"
        "cols = r.column_names\n"
        "print(json.dumps([dict(zip(cols, row)) for row in r.result_rows], default=str))\n"
        "s.close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _window_key(w: dict[str, Any]) -> tuple[str, str, datetime]:
    ts = datetime.fromisoformat(str(w["window_start"]).replace(" ", "T"))
    return w["account_id"], w["energy_type"], ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _check_replay(stored: list[dict[str, Any]], readings: list[dict[str, Any]]) -> int:
    """Stored windows == replay's on the same readings (consumption, tCO2e, factor)."""
    lines = [json.dumps({**r, "ts": r["ts"].isoformat()}) for r in readings]
    expected, rejected = replay(lines, Settings())
    assert not rejected
    want = {_window_key(w): w for w in expected}
    got = {_window_key(w): w for w in stored}
    assert set(got) == set(want), sorted(set(got) ^ set(want))[:5]
    for key, w in want.items():
        g = got[key]
        assert g["factor_id"] == w["factor_id"], key
        assert math.isclose(g["consumption"], w["consumption"], rel_tol=1e-9), key
        assert math.isclose(g["tco2e"], w["tco2e"], rel_tol=1e-9, abs_tol=1e-12), key
    return len(want)


@pytest.mark.bench
@pytest.mark.timeout(1800)  # full size: minutes (the suite's default is 300 s)
def test_e2e_throughput(bench_full: bool, tmp_path: Path, unique: str) -> None:
    sizes = _sizes(bench_full)
    t0 = _t0(sizes)
    step = sizes["step_minutes"]
    accounts = [f"A{a}" for a in range(sizes["accounts"])]
    sampled = {a for i, a in enumerate(accounts) if i % sizes["sample"] == 0} | {WARMUP}
    app_id = f"e2e-{unique}"
    run = _Run()
    usage: dict[str, tuple[float, int]] = {}
    peers: dict[str, float] = {}
    with EmbeddedBroker(tmp_path / "kafka", log_file=tmp_path / "broker.log") as broker:
        bootstrap = broker.bootstrap
        settings = Settings(data_dir=str(tmp_path / "var"))
        settings.kafka.partitions = PARTITIONS
        asyncio.run(create_topics(settings, bootstrap))
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
            asyncio.run(_warmup(bootstrap, t0 - timedelta(hours=1), 120))
            # CPU on the clock only: start-up (imports, chdb, Faust) is not per reading
            assert broker._proc is not None
            broker_pid = broker._proc.pid
            before = {pid: _proc_usage(pid)[0] for pid in [broker_pid, *(p.pid for p in procs)]}
            timeout = 120 + sizes["accounts"] * sizes["meters"] * sizes["cycles"] / 1_000

            async def _both() -> None:
                published = asyncio.Event()
                follow = asyncio.create_task(
                    _follow(bootstrap, sampled, run, app_id, published, procs, timeout)
                )
                await _publish(bootstrap, sizes, t0, run, accounts)
                published.set()
                await follow

            asyncio.run(_both())
            for name, p in [("sink", sink)] + [(f"worker{i}", w) for i, w in enumerate(workers)]:
                cpu, rss = _proc_usage(p.pid)
                usage[name] = (cpu - before[p.pid], rss)
            cpu, rss = _proc_usage(broker_pid)
            usage["broker"] = (cpu - before[broker_pid], rss)
        finally:
            for p in procs:
                _stop(p)
        if not bench_full:
            readings = [
                r for c in range(2) for r in _cycle(t0 - timedelta(hours=1), 60, WARMUP, c, 1)
            ]
            readings += [
                r for c in range(sizes["cycles"]) for a in accounts
                for r in _cycle(t0, step, a, c, sizes["meters"])
            ]  # fmt: skip
            n = _check_replay(_stored_windows(sink_data), readings)
            print(f"ClickHouse == replay: {n} windows", flush=True)
        # the peers, on the same broker, after ours: a prefix of the same readings as JSON
        if os.environ.get("E2E_PEERS", "1") == "0":  # a profiling run: ours only
            sizes["ceiling"] = sizes["naive"] = sizes["quix"] = 0
        if max(sizes["ceiling"], sizes["naive"], sizes["quix"]):
            peers = _peers(bootstrap, sizes, accounts, t0, unique, tmp_path)
    seconds = run.stored_at - run.first_publish
    rate = run.readings / seconds
    lat = sorted(_latencies(run, t0, step))
    assert lat, "no sampled window latency"
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    cpu = sum(u[0] for k, u in usage.items() if k != "broker")
    result = {
        "sizes": sizes,
        "readings": run.readings,
        "seconds": seconds,
        "rate": rate,
        "p50": p50,
        "p99": p99,
        "latency_samples": len(lat),
        "cpu_per_m": cpu / run.readings * 1e6,
        # the workers alone (input committed; Faust commits every few seconds): is the
        # sink behind them?
        "worker_rate": run.readings / (run.worker_done - run.first_publish),
        "usage": usage,
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
        "at full speed (a saturating load: latency includes queueing)",
        "",
        "| system | readings/s | p50 publish→stored s | p99 s | CPU s / 1M readings |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| ours: worker(s) + sink → ClickHouse, end to end | {r['rate']:,.0f} | "
        f"{r['p50']:.2f} | {r['p99']:.2f} | {r['cpu_per_m']:.1f} |",
        f"| ours: worker(s) alone, input offsets committed | {r['worker_rate']:,.0f} | | | |",
        f"| ceiling: raw aiokafka + json.loads ({s['ceiling']:,} msgs) | "
        f"{r['peers'].get('ceiling', 0.0):,.0f} | | | |",
        f"| (a) naive Faust, per-event windowed table ({s['naive']:,} msgs) | "
        f"{r['peers'].get('naive', 0.0):,.0f} | | | |",
        f"| (b) Quix Streams tumbling window ({s['quix']:,} msgs) | "
        f"{r['peers'].get('quix', 0.0):,.0f} | | | |",
        "",
        "| process | CPU s (on the clock) | peak RSS MiB |",
        "| --- | ---: | ---: |",
    ]
    for name, (cpu, rss) in r["usage"].items():
        lines.append(f"| {name} | {cpu:.1f} | {rss / mb:.0f} |")
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
    b.bar(["p50", "p99"], [r["p50"], r["p99"]], color="tab:green")
    b.set_ylabel("seconds")
    b.set_title("ours: publication → window stored")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
