"""The labelling agent's state (LabelBook) and relabels: each trigger touches only the
accounts it affects; the agent in-process on the real broker takes windows as Arrow
batches as it takes them as JSON (more of its Faust wiring end to end in tests/e2e/)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.contracts import Account, AccountLabel, Benchmark, Denominator, EmissionWindow
from streams.agents.labelling import LabelBook
from streams.rules.labelling import LabelReason, RuleBook


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def account(account_id: str, industry: str, region: str, area: str = "industry") -> Account:
    return Account(
        account_id=account_id,
        area=area,
        name=account_id,
        region=region,
        district="d",
        industry_code=industry,
        denominator_unit="10k_yuan" if area != "daily_life" else "",
        timezone="UTC",
    )


def window(
    account_id: str,
    month: int,
    tco2e: float,
    revision: int = 0,
    version: str = "f1",
    year: int = 2025,
) -> EmissionWindow:
    start = _utc(year, month, 10, 8)
    return EmissionWindow(
        account_id=account_id,
        energy_type="electricity",
        window_start=start,
        window_end=start + timedelta(minutes=15),
        consumption=tco2e * 1000,
        unit="kWh",
        tco2e=tco2e,
        factor_id="grid-east_china",
        factor_version=version,
        factor_value=0.001,
        factor_unit="tCO2e/kWh",
        revision=revision,
    )


def denominator(account_id: str, value: float, year: int = 2025) -> Denominator:
    return Denominator(
        account_id=account_id,
        period_start=_utc(year, 1, 1),
        period_end=_utc(year + 1, 1, 1),
        value=value,
        unit="10k_yuan",
    )


def benchmark(industry: str, region: str, value: float, version: str = "v1") -> Benchmark:
    return Benchmark(
        area="industry",
        industry_code=industry,
        region=region,
        period_start=_utc(2025, 1, 1),
        period_end=_utc(2026, 1, 1),
        value=value,
        unit="tCO2e/10k_yuan",
        source="test",
        version=version,
    )


class Book:
    """A LabelBook over dicts, recording which accounts each trigger evaluated."""

    def __init__(self) -> None:
        self.evaluated: list[tuple[str, LabelReason]] = []
        self.book = LabelBook(
            RuleBook(),
            "UTC",
            accounts={},
            windows={},
            benchmarks={},
            on_evaluate=lambda a, t: self.evaluated.append((a, t)),
        )

    def take(self) -> list[tuple[str, LabelReason]]:
        out, self.evaluated = self.evaluated, []
        return out


def _key(b: Benchmark) -> str:
    return f"{b.area}|{b.industry_code}|{b.region}|{b.period_start.isoformat()}"


@pytest.fixture
def city() -> tuple[Book, list[AccountLabel]]:
    """Three labelled accounts and a resident, each with 100 t in every month of 2025 and a
    window in 2026-01 (closing 2025). Value added 100 (10k yuan) in 2025: intensity 12
    (tCO2e per 10k yuan).

    Benchmarks: C26 anywhere 10 (K 1.2, light green), C30 anywhere 12 (K 1.0, light green).
    """
    b = Book()
    labels: list[AccountLabel] = []
    accounts = [
        account("A1", "C2614", "east"),
        account("A2", "C2614", "west"),
        account("A3", "C3011", "east"),
        account("R1", "", "east", area="daily_life"),
    ]
    for bench in (benchmark("C26", "*", 10.0), benchmark("C30", "*", 12.0)):
        labels += b.book.on_benchmark(bench, _key(bench))
    for a in accounts:
        labels += b.book.on_account(a)
        labels += b.book.on_denominator(denominator(a.account_id, 100.0), "")
        for m in range(1, 13):
            labels += b.book.on_window(window(a.account_id, m, 100.0))
        labels += b.book.on_window(window(a.account_id, 1, 5.0, year=2026))
    b.take()
    return b, labels


def test_first_labels(city: tuple[Book, list[AccountLabel]]) -> None:
    b, labels = city
    got = [(x.account_id, x.new_colour, x.reason, x.revision, round(x.k or 0, 9)) for x in labels]
    # when 2025-01 closes (a February window), the period 2024-02..2025-01 has months
    # without any window: no colour, with the reason; nothing changes until 2026-01
    # closes 2025: K = (12 x 100 t / 100) / benchmark:
    # A1, A2: 12 / 10 = 1.2; A3: 12 / 12 = 1.0. The resident R1 is not labelled.
    assert got == [
        ("A1", None, "incomplete_period", 1, 0),
        ("A1", "light_green", "emissions_change", 2, 1.2),
        ("A2", None, "incomplete_period", 1, 0),
        ("A2", "light_green", "emissions_change", 2, 1.2),
        ("A3", None, "incomplete_period", 1, 0),
        ("A3", "light_green", "emissions_change", 2, 1.0),
    ]
    assert "R1" not in b.book.accounts or b.book.accounts["R1"]["account"] is None
    assert labels[1].period_start == _utc(2025, 1, 1)
    assert labels[1].period_end == _utc(2026, 1, 1)


def test_own_window_change_relabels_only_that_account(city: Any) -> None:
    b, _ = city
    # A1's March revised from 100 to 200 t: 1300 / 100 = 13, K 1.3 -> yellow (past 1.224)
    out = b.book.on_window(window("A1", 3, 200.0, revision=1))
    assert b.take() == [("A1", LabelReason.EMISSIONS_CHANGE)]
    assert [(x.account_id, x.old_colour, x.new_colour, x.reason) for x in out] == [
        ("A1", "light_green", "yellow", "emissions_change")
    ]
    assert out[0].revision == 3 and out[0].intensity == pytest.approx(13.0)
    # a replay of the same revision neither adds nor evaluates
    assert b.book.on_window(window("A1", 3, 200.0, revision=1)) == []
    assert b.take() == []
    # a window of the open month (2026-01) changes nothing until the month closes
    late_in_month = window("A1", 1, 50.0, year=2026).derive(window_start=_utc(2026, 1, 20))
    assert b.book.on_window(late_in_month) == []
    assert b.take() == []


def test_denominator_change_relabels_only_that_account(city: Any) -> None:
    b, _ = city
    # A2's value added 2025 revised to 50: 1200 / 50 = 24, K 2.4 -> red
    out = b.book.on_denominator(denominator("A2", 50.0), "")
    assert b.take() == [("A2", LabelReason.DENOMINATOR_CHANGE)]
    assert [(x.account_id, x.new_colour, x.reason) for x in out] == [
        ("A2", "red", "denominator_change")
    ]


def test_benchmark_change_relabels_only_its_industry_and_region(city: Any) -> None:
    b, _ = city
    # a C26 benchmark for region east only, 16: A1's K 12 / 16 = 0.75 -> dark green (past
    # 0.8 x 0.98 = 0.784). A2 (west) and A3 (C30) are not evaluated at all.
    bench = benchmark("C26", "east", 16.0, version="v2")
    out = b.book.on_benchmark(bench, _key(bench))
    assert b.take() == [("A1", LabelReason.BENCHMARK_CHANGE)]
    assert [(x.account_id, x.new_colour, x.benchmark, x.benchmark_version) for x in out] == [
        ("A1", "dark_green", 16.0, "v2")
    ]
    # withdrawn again (tombstone): A1 falls back to C26 "*" = 10, K 1.2
    out = b.book.on_benchmark(None, _key(bench))
    assert b.take() == [("A1", LabelReason.BENCHMARK_CHANGE)]
    assert [(x.account_id, x.new_colour) for x in out] == [("A1", "light_green")]


def test_factor_revision_arrives_as_revised_windows(city: Any) -> None:
    b, _ = city
    # a new factor version raises A3's 2025 windows from 100 to 125 t (revision 1), one by
    # one; only A3 is evaluated, 12 times. After n windows K = (1200 + 25 n) / 100 / 12; it
    # passes 1.2 x 1.02 = 1.224 at n = 11 (K = 1475 / 1200): one label, yellow.
    out = []
    for m in range(1, 13):
        out += b.book.on_window(window("A3", m, 125.0, revision=1, version="f2"))
    assert b.take() == [("A3", LabelReason.FACTOR_REVISION)] * 12
    assert [(x.account_id, x.new_colour, x.reason) for x in out] == [
        ("A3", "yellow", "factor_revision")
    ]
    assert out[0].k == pytest.approx(1475 / 1200)


def test_missing_benchmark_withdraws_the_colour(city: Any) -> None:
    b, _ = city
    bench = benchmark("C30", "*", 12.0)
    out = b.book.on_benchmark(None, _key(bench))
    assert [(x.account_id, x.old_colour, x.new_colour, x.reason) for x in out] == [
        ("A3", "light_green", None, "no_benchmark")
    ]


def test_flapping_is_held_by_hysteresis(city: Any) -> None:
    b, _ = city
    # A1 sits at K 1.2. March at 102 t: 1202 / 100 = 12.02, K 1.202 > 1.2 but within the
    # 2% margin (1.224): no change. March at 103: K 1.203, still held. Back to 100: held.
    for rev, t in enumerate((102.0, 103.0, 100.0), start=1):
        assert b.book.on_window(window("A1", 3, t, revision=rev)) == []
    # March at 125: K 1.225 > 1.224 -> yellow
    out = b.book.on_window(window("A1", 3, 125.0, revision=4))
    assert [x.new_colour for x in out] == ["yellow"]


def test_state_keeps_only_the_months_an_evaluation_needs(city: Any) -> None:
    b, _ = city
    # latest month 2026-01: an evaluation reads 2025-01..2025-12 and a year earlier
    # 2024-01..2024-12, so months before 2024-01 are neither kept nor counted
    windows_before = len(b.book.windows)
    assert b.book.on_window(window("A1", 12, 50.0, year=2023)) == []
    assert len(b.book.windows) == windows_before and b.take() == []
    assert b.book.on_window(window("A1", 1, 50.0, year=2024)) == []  # kept (no colour change)
    assert "2024-01" in b.book.accounts["A1"]["months"]
    # a window of 2028-03 moves the latest month: everything before 2026-03 is dropped
    b.book.on_window(window("A1", 3, 1.0, year=2028))
    assert sorted(b.book.accounts["A1"]["months"]) == ["2028-03"]


def _quarter(account_id: str, energy_type: str, start: datetime, tco2e: float) -> EmissionWindow:
    # one 15-minute window at `start`
    return window(account_id, 1, tco2e).derive(
        energy_type=energy_type,
        window_start=start,
        window_end=start + timedelta(minutes=15),
        unit="kWh" if energy_type == "electricity" else "GJ",
    )


def test_a_batch_straddling_a_month_boundary_labels_on_the_whole_month(city: Any) -> None:
    """One windows message across 2026-02-01, in the accounting agent's order (energy type,
    then window start, the accounts interleaved): January's last steam windows come after
    February's first electricity windows. Each account is evaluated once, on January
    whole: never a label on a January missing its last rows, corrected by the next row."""
    from streams.agents.labelling import _on_windows

    b, _ = city
    # A1, A2: light green at K 1.2 on 2025 (January 2026 so far: 5 t). February closes
    # January: the period becomes 2025-02..2026-01, over a denominator of
    # 100 x 334/365 (2025) + 730 x 31/365 (2026) = 153.5
    for a in ("A1", "A2"):
        b.book.on_denominator(denominator(a, 730.0, year=2026), "")
    b.take()
    jan, feb = _utc(2026, 1, 31, 23, 45), _utc(2026, 2, 1)
    steam = {"A1": 900.0, "A2": 300.0}
    batch = [_quarter(a, "electricity", t, 1.0) for t in (jan, feb) for a in ("A1", "A2")]
    batch += [_quarter(a, "steam", jan, steam[a]) for a in ("A1", "A2")]
    batch += [_quarter(a, "steam", feb, 1.0) for a in ("A1", "A2")]
    out = _on_windows(b.book, batch, 0)
    # on January without its steam K would be 1106 / 153.5 / 10 = 0.72: dark green for
    # both, then corrected. Whole: A1 (1100 + 5 + 1 + 900) / 153.5 / 10 = 1.31, yellow;
    # A2 (1100 + 5 + 1 + 300) / 153.5 / 10 = 0.92, light green as it was: no label
    den = 100 * 334 / 365 + 730 * 31 / 365
    assert [(x.account_id, x.old_colour, x.new_colour, x.reason) for x in out] == [
        ("A1", "light_green", "yellow", "emissions_change")
    ], [(x.account_id, x.new_colour, x.k) for x in out]
    assert out[0].k == pytest.approx(2006 / den / 10)
    assert b.take() == [("A1", LabelReason.EMISSIONS_CHANGE), ("A2", LabelReason.EMISSIONS_CHANGE)]
    # the state is what the rows one by one give: January whole, February open
    assert b.book.accounts["A1"]["months"]["2026-01"] == pytest.approx(906.0)
    assert b.book.accounts["A1"]["latest"] == "2026-02"


@pytest.mark.parametrize("seed", range(5))
def test_batches_label_as_the_windows_one_by_one_in_time_order(seed: int) -> None:
    """Windows over 27 months, two energy types, the monthly totals random (K between
    about 0.6 and 2.4): cut into messages at random rows and each message in the
    accounting agent's order (energy type, then window start), they give the labels the
    same windows give one by one in time order."""
    import random

    rng = random.Random(seed)
    rows: list[EmissionWindow] = []
    for i in range(27):  # 2024-01 .. 2026-03
        year, month = 2024 + i // 12, i % 12 + 1
        per_window = rng.uniform(50.0, 200.0) / 8
        for energy_type in ("electricity", "steam"):
            for day in (1, 9, 17, 28):
                start = _utc(year, month, day, rng.randrange(24), 15 * rng.randrange(4))
                rows.append(_quarter("A1", energy_type, start, per_window))
    rows.sort(key=lambda w: w.window_start)
    cuts = sorted(rng.sample(range(1, len(rows)), 12))
    messages = [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True)]

    def labels(batched: bool) -> list[tuple[Any, ...]]:
        b = Book()
        bench = benchmark("C26", "*", 10.0).derive(
            period_start=_utc(2023, 1, 1), period_end=_utc(2027, 1, 1)
        )
        b.book.on_benchmark(bench, _key(bench))
        b.book.on_account(account("A1", "C2614", "east"))
        for year in (2023, 2024, 2025, 2026):
            b.book.on_denominator(denominator("A1", 100.0, year=year), "")
        out: list[AccountLabel] = []
        for message in messages:
            if batched:
                out += b.book.on_windows(
                    sorted(message, key=lambda w: (w.energy_type, w.window_start))
                )
            else:
                for w in message:
                    out += b.book.on_window(w)
        return [(x.old_colour, x.new_colour, x.reason, x.k, x.revision) for x in out]

    one_by_one = labels(batched=False)
    assert len({x[1] for x in one_by_one}) >= 2  # the colour does change
    assert labels(batched=True) == one_by_one


# ---------------------------------------------------------------- the agent, on the broker

PARTITIONS = 2
#: industry code -> (benchmark, colour): 12 t per 10k yuan is K 1.2 against 10, 0.6 against 20
INDUSTRIES = {"C2614": (10.0, "light_green"), "C3011": (20.0, "dark_green")}


def _year_of_windows(account_id: str) -> list[EmissionWindow]:
    # 100 t in every month of 2025, then a window of 2026-01 that closes 2025
    return [window(account_id, m, 100.0) for m in range(1, 13)] + [
        window(account_id, 1, 1.0, year=2026)
    ]


def _interleaved(ids: list[str]) -> list[EmissionWindow]:
    # the accounts' windows in one batch, row by row in turn (each account's in order)
    years = [_year_of_windows(a) for a in ids]
    return [w for ws in zip(*years, strict=True) for w in ws]


class _Agent:
    """The labelling agents of a Faust app in this process, on topics of their own, with
    accounts, denominators and benchmarks already in their tables."""

    def __init__(self, bootstrap: str, settings: Any, unique: str) -> None:
        self.bootstrap, self.unique = bootstrap, unique
        settings.kafka.partitions = PARTITIONS
        settings.streams.app_id = f"labelling-agent-{unique}"
        settings.streams.timezone = "UTC"
        settings.data_path.mkdir(parents=True, exist_ok=True)  # Faust's datadir lives under it
        self.settings = settings

    def name(self, topic: str) -> str:
        return f"{topic}.{self.unique}"

    def accounts(self, prefix: str, per_partition: int) -> dict[int, list[str]]:
        """Account ids of ours, `per_partition` on each partition of the windows' topic."""
        from streams.registry import partition_for

        found: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
        i = 0
        while any(len(ids) < per_partition for ids in found.values()):
            account_id = f"{prefix}{i}-{self.unique}"
            ids = found[partition_for(account_id, PARTITIONS)]
            if len(ids) < per_partition:
                ids.append(account_id)
            i += 1
        return found

    async def start(self, industry_of: dict[str, str]) -> None:
        from aiokafka import AIOKafkaConsumer

        from infra.broker import ensure_topics
        from schemas.topics import dlq
        from streams.agents import labelling
        from streams.app import create_app
        from streams.registry import benchmark_key, denominator_key, produce

        specs = [(self.name(t), PARTITIONS, False) for t in labelling.TOPICS]
        specs += [(dlq(self.name(t)), PARTITIONS, False) for t in labelling.TOPICS]
        await ensure_topics(self.bootstrap, specs)
        self.app = create_app(self.settings, self.bootstrap, agents=[])
        labelling.register(self.app, self.settings, topic=self.name)
        self.labels = AIOKafkaConsumer(
            self.name("accounts.labels"), bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest", group_id=f"labels-{self.unique}",
        )  # fmt: skip
        self.dlq = AIOKafkaConsumer(
            dlq(self.name("emissions.windows")), bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest", group_id=f"dlq-{self.unique}",
        )  # fmt: skip
        await self.labels.start()
        await self.dlq.start()
        await self.app.start()
        benches = [benchmark(code[:3], "*", value) for code, (value, _) in INDUSTRIES.items()]
        await produce(
            self.bootstrap, self.name("benchmarks"), [(benchmark_key(b), b, None) for b in benches]
        )
        await produce(
            self.bootstrap,
            self.name("accounts.registry"),
            [(a, account(a, code, "east"), None) for a, code in industry_of.items()],
        )
        dens = [denominator(a, 100.0) for a in industry_of]
        await produce(
            self.bootstrap,
            self.name("accounts.denominators"),
            [(denominator_key(d), d, d.account_id) for d in dens],
        )
        # the windows come after all of it, so each account's labels are the same whatever
        # order the agent takes the reference topics in
        await self._until_known(industry_of, [benchmark_key(b) for b in benches], timeout=60)

    async def _until_known(self, accounts: Any, benches: list[str], timeout: float) -> None:
        import asyncio
        import time

        states, known = (
            self.app.tables["labelling-accounts"],
            self.app.tables["labelling-benchmarks"],
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = [states.get(a) for a in accounts]
            if all(s and s["account"] and s["denominators"] for s in ready) and all(
                b in known for b in benches
            ):
                return
            await asyncio.sleep(0.2)
        raise AssertionError("the agent did not take the reference data in time")

    async def send_json(self, windows: list[EmissionWindow]) -> None:
        from streams.registry import produce

        await produce(
            self.bootstrap,
            self.name("emissions.windows"),
            [(w.account_id, w, None) for w in windows],
        )

    async def send_raw(self, partition: int, *values: bytes) -> None:
        """Messages as the accounting agent sends a batch: key None, an explicit partition,
        header content-type Arrow."""
        from aiokafka import AIOKafkaProducer

        from schemas.codec import ARROW_FORMAT, FORMAT_HEADER

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(
                    self.name("emissions.windows"),
                    value,
                    key=None,
                    partition=partition,
                    headers=[(FORMAT_HEADER, ARROW_FORMAT)],
                )
        finally:
            await producer.stop()

    async def read(self, consumer: Any, want: int, timeout: float, parse: Any = None) -> list:
        """`want` records of `consumer` (at most `timeout` s), then any more for 2 s."""
        import time

        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(out) < want:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += [parse(r) if parse else r for r in records]
        for records in (await consumer.getmany(timeout_ms=2000)).values():  # any extra
            out += [parse(r) if parse else r for r in records]
        return out

    async def stop(self) -> None:
        import asyncio
        import contextlib

        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.app.stop(), 30)
        await self.labels.stop()
        await self.dlq.stop()


@pytest.fixture
async def agent(bootstrap: str, settings: Any, unique: str) -> Any:
    run = _Agent(bootstrap, settings, unique)
    yield run
    if hasattr(run, "app"):
        await run.stop()


def _label(record: Any) -> dict[str, Any]:
    import json

    return json.loads(record.value)


def _events_in() -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "carbon_accounts_stream_events_in_total", {"agent": "labelling"}
    )
    return value or 0.0


async def test_arrow_batches_of_windows_label_as_the_same_windows_in_json(agent: _Agent) -> None:
    from schemas.codec import to_arrow

    # four accounts whose windows come in Arrow batches, two on each partition (one batch
    # per partition, the accounts' rows interleaved), and their twins' in JSON, one a message
    by_partition = agent.accounts("A", 2)
    arrow_ids = [a for ids in by_partition.values() for a in ids]
    twins = {a: f"J{i}-{agent.unique}" for i, a in enumerate(arrow_ids)}
    codes = list(INDUSTRIES)
    industry_of = {a: codes[i % 2] for i, a in enumerate(arrow_ids)}
    industry_of |= {twins[a]: code for a, code in list(industry_of.items())}
    await agent.start(industry_of)
    before = _events_in()

    await agent.send_json([w for a in arrow_ids for w in _year_of_windows(twins[a])])
    for partition, ids in by_partition.items():
        await agent.send_raw(partition, to_arrow(EmissionWindow, _interleaved(ids)))
    # each account: no colour when 2025-01 closes (months before it missing), then its colour
    got = await agent.read(agent.labels, 2 * len(industry_of), timeout=60, parse=_label)

    def labels_of(account_id: str) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in x.items() if k not in ("account_id", "ts")}
            for x in got
            if x["account_id"] == account_id
        ]

    for a in arrow_ids:
        mine = labels_of(a)
        assert mine == labels_of(twins[a]), (a, got)
        assert [(x["new_colour"], x["reason"]) for x in mine] == [
            (None, "incomplete_period"),
            (INDUSTRIES[industry_of[a]][1], "emissions_change"),
        ]
    assert len(got) == 2 * len(industry_of)
    # the counter counts windows, not messages: 13 per account
    assert _events_in() - before == 13 * len(industry_of)
    assert await agent.read(agent.dlq, 0, timeout=0) == []


async def test_a_bad_row_goes_to_the_dlq_alone_and_the_batch_goes_on(agent: _Agent) -> None:
    from schemas.codec import ARROW_FORMAT, FORMAT_HEADER, from_arrow, to_arrow

    partition, ids = next(iter(agent.accounts("B", 2).items()))
    industry_of = dict(zip(ids, INDUSTRIES, strict=True))
    await agent.start(industry_of)
    before = _events_in()

    rows = [w.asdict() for w in _interleaved(ids)]
    bad = {**rows[4], "energy_type": "plasma"}  # between two good rows
    batch = to_arrow(EmissionWindow, [*rows[:5], bad, *rows[5:]])
    await agent.send_raw(partition, batch, b"not an Arrow stream")

    got = await agent.read(agent.labels, 2 * len(ids), timeout=60, parse=_label)
    final = {x["account_id"]: x["new_colour"] for x in got}
    assert final == {a: INDUSTRIES[code][1] for a, code in industry_of.items()}, got
    dead = await agent.read(agent.dlq, 2, timeout=30)
    assert len(dead) == 2, dead
    by_reason = {dict(r.headers)["reason"]: r for r in dead}
    assert set(by_reason) == {b"unknown_energy_type", b"bad_encoding"}
    # the bad row alone, as a one-row Arrow batch of the same schema, with where it came from
    row = by_reason[b"unknown_energy_type"]
    headers = dict(row.headers)
    assert headers[FORMAT_HEADER] == ARROW_FORMAT
    assert headers["field"] == b"energy_type"
    assert headers["source-topic"] == agent.name("emissions.windows").encode()
    assert headers["source-partition"] == str(partition).encode()
    alone = from_arrow(row.value)
    assert alone.schema == from_arrow(batch).schema
    assert [(r["account_id"], r["energy_type"]) for r in alone.to_pylist()] == [
        (bad["account_id"], "plasma")
    ]
    # a message that is not Arrow at all: whole, verbatim
    whole = by_reason[b"bad_encoding"]
    assert whole.value == b"not an Arrow stream"
    assert int(dict(whole.headers)["source-offset"]) == int(headers["source-offset"]) + 1
    # windows counted: the batch's 26 good rows and its bad one, and the unreadable message
    assert _events_in() - before == 26 + 1 + 1


def test_windows_of_reads_a_good_batch_by_columns_as_rows_read_it() -> None:
    # the columnar path (every row good) and the row path give the book the same fields;
    # a batch with a bad row takes the row path, its bad row in its place
    from schemas.codec import ARROW_FORMAT, FORMAT_HEADER, to_arrow
    from streams.agents.labelling import _Window, _windows_of

    headers = {FORMAT_HEADER: ARROW_FORMAT}
    good = [window("E1", 1, 1.5), window("E2", 2, 2.5, revision=3, version="f2")]
    by_columns = _windows_of(to_arrow(EmissionWindow, good), headers)
    assert [type(w) for w in by_columns] == [_Window, _Window]
    assert [w._asdict() for w in by_columns] == [
        {name: getattr(g, name) for name in _Window._fields} for g in good
    ]
    bad = [good[0].asdict(), {**good[1].asdict(), "tco2e": float("inf")}]
    by_rows = _windows_of(to_arrow(EmissionWindow, bad), headers)
    assert by_rows[0].tco2e == 1.5 and by_rows[0].window_start == good[0].window_start
    assert by_rows[1].reason.value == "not_finite" and by_rows[1].row == 1
    assert _windows_of(good[0].dumps(), None)[0].factor_version == "f1"  # one JSON window
