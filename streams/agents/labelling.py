"""The labelling agent: emission windows and reference data in, colour changes out.

Two agents share one state (`LabelBook`, over Faust tables): `labelling` reads
`emissions.windows`, `accounts.registry` and `accounts.denominators` (produced on the
partition of their account; a windows message is one JSON window or an Arrow IPC batch of
many, all of accounts of its partition: `schemas.codec.rows_from_message`),
`labelling-benchmarks` reads an internal fan-out of `benchmarks` (every benchmark is
copied to every partition by a third agent, so each worker sees them all and re-evaluates
only the accounts it owns). All these topics have
the same partition count, so Faust gives the same partition numbers of all of them to one
worker. Each record re-evaluates only the accounts it can change:

- a window: its account (and only when it changes a closed month or closes one); the
  windows of a batch together, per account in local-month order, evaluated once per month
  the batch closes (never on a month whose last rows come later in the message:
  `streams.rules.labelling.batch_steps`), a bad row to `emissions.windows.dlq` alone (a
  one-row Arrow batch), a message that cannot be read at all whole;
- a registry entry or a denominator: its account;
- a benchmark: the accounts of that area, industry code prefix and region;
- a factor revision arrives as windows with a higher revision: they replace, never add.

State per account is compact: emissions per local month, the denominators, the last
label. Per window only `[revision, tCO2e, factor_version]` is kept, to replace a revised
window by its difference. A label goes to `accounts.labels` only when the colour changes.

The tables are written behind (`streams.agents._writebehind.DeferredTable`): the book's
writes land in memory at once, and every 0.5 s a snapshot writes each changed key to its
changelog once, then acks the messages behind them (Faust's own one changelog record per
write, about 0.2 ms each, capped the agent near 2,000 windows/s here).
"""

from __future__ import annotations

import logging
from collections import namedtuple
from collections.abc import Callable, Iterable, MutableMapping
from datetime import UTC, datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, Protocol

import faust

from infra.broker import COMPACTION
from schemas.codec import (
    ARROW_FORMAT,
    FORMAT_HEADER,
    arrow_column,
    arrow_row,
    checked_arrow,
    decode,
    decode_json,
    message_format,
    rows_from_message,
)
from schemas.contracts import Account, AccountLabel, Benchmark, Denominator, EmissionWindow
from schemas.dlq import dlq_headers, dlq_topic
from schemas.errors import ContractError
from schemas.settings import Settings
from streams.agents._writebehind import (
    DeferredTable,
    Ticker,
    send_records,
    start_before_consumer,
)
from streams.metrics import EVENTS_IN, EVENTS_OUT, LABEL_CHANGES, LABEL_EVALUATIONS
from streams.registry import benchmark_key, benchmark_value, load_rulebook, validate
from streams.rules.labelling import (
    BenchmarkValue,
    DenominatorValue,
    LabelReason,
    LabelState,
    RuleBook,
    batch_steps,
    combine_triggers,
    decide,
    evaluate,
    is_labelled,
    local_month,
    month_add,
    window_delta,
    window_trigger,
)

__all__ = ["LabelBook", "register"]

log = logging.getLogger(__name__)

AGENT = "labelling"
_SNAPSHOT_SECONDS = 0.5  # changed state written, and its messages acked, this often ...
_MAX_HELD = 5_000  # ... or once this many messages wait for it

#: the topics the agent reads and writes (a test may map them to its own names)
TOPICS = (
    "emissions.windows",
    "accounts.registry",
    "accounts.denominators",
    "benchmarks",
    "accounts.labels",
)


@lru_cache(maxsize=8192)  # per window, and windows share few instants
def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


class WindowFields(Protocol):
    """What the book reads of an `EmissionWindow`: the Record, or its checked row with
    the fields as attributes (the agent's, cheaper than a Record per window)."""

    account_id: str
    energy_type: str
    window_start: datetime
    revision: int
    tco2e: float
    factor_version: str


class LabelBook:
    """The labelling state of the accounts one worker owns, over mutable mappings.

    The agent passes Faust tables (changelogged, recovered on restart); a value is always
    written back whole, never mutated in place, so the changelog sees every change.

    - `accounts[account_id]`: `{account, partition, denominators, months, latest, label}`;
    - `windows["account|energy_type|window_start"]`: `[revision, tco2e, factor_version]`;
    - `benchmarks[benchmark key]`: the Benchmark as JSON.
    """

    def __init__(
        self,
        rules: RuleBook,
        default_timezone: str,
        *,
        accounts: MutableMapping[str, Any],
        windows: MutableMapping[str, Any],
        benchmarks: MutableMapping[str, Any],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_evaluate: Callable[[str, LabelReason], None] | None = None,
    ) -> None:
        self.rules = rules
        self.default_timezone = default_timezone
        self.accounts = accounts
        self.windows = windows
        self.benchmarks = benchmarks
        self.clock = clock
        self.on_evaluate = on_evaluate
        self._bench_cache: list[BenchmarkValue] | None = None

    # ------------------------------------------------------------ state

    def _state(self, account_id: str) -> dict[str, Any]:
        state = self.accounts.get(account_id)
        if state is None:
            return {
                "account": None,
                "partition": None,
                "denominators": {},
                "months": {},
                "latest": None,
                "label": None,
            }
        return dict(state)

    def reload(self) -> None:
        """Forget derived caches (call when the mappings changed behind the book's back,
        as after a rebalance recovered tables from their changelogs)."""
        self._bench_cache = None

    def _benchmarks(self) -> list[BenchmarkValue]:
        if self._bench_cache is None:
            self._bench_cache = [
                benchmark_value(decode(Benchmark, b)) for b in self.benchmarks.values()
            ]
        return self._bench_cache

    # ------------------------------------------------------------ triggers

    def on_window(self, w: WindowFields, partition: int | None = None) -> list[AccountLabel]:
        """An emission window (new, late, or revised): update the account's months."""
        return self.on_windows([w], partition)

    def on_windows(
        self, windows: Iterable[WindowFields], partition: int | None = None
    ) -> list[AccountLabel]:
        """The windows of one message (a batch), per account in local-month order: each
        account evaluated once per month the batch closes, on all the batch's rows of the
        months before it, and once on its late rows of closed months
        (`streams.rules.labelling.batch_steps`), never between rows of one evaluation.
        Labels per account, in the order the accounts first appear."""
        by_account: dict[str, list[WindowFields]] = {}
        for w in windows:
            by_account.setdefault(w.account_id, []).append(w)
        out: list[AccountLabel] = []
        for account_id, mine in by_account.items():
            out += self._account_windows(account_id, mine, partition)
        return out

    def _account_windows(
        self, account_id: str, windows: list[WindowFields], partition: int | None
    ) -> list[AccountLabel]:
        # one account's windows of a batch: a step's windows into the state, then one
        # evaluation (the state is stored by `_evaluate`, with or without a trigger)
        state = self._state(account_id)
        account = state["account"]
        tz = account["timezone"] if account else self.default_timezone
        keep = self._months_kept(account)
        months = [local_month(w.window_start, tz) for w in windows]
        out: list[AccountLabel] = []
        for step in batch_steps(state["latest"], months):
            state["months"] = dict(state["months"])  # a new value, never the stored one
            applied, trigger = False, None
            for i in step:
                took, why = self._apply(state, windows[i], months[i], keep, partition)
                if took:
                    applied, trigger = True, combine_triggers(trigger, why)
            if applied:
                oldest = month_add(state["latest"], -keep)
                state["months"] = {m: v for m, v in state["months"].items() if m >= oldest}
                out += self._evaluate(account_id, state, trigger)
                state = dict(state)
        return out

    def _apply(
        self, state: dict[str, Any], w: WindowFields, month: str, keep: int, partition: int | None
    ) -> tuple[bool, LabelReason | None]:
        # one window into `state` (its months updated in place): whether it changed the
        # sums, and its trigger (None: it cannot change an evaluation)
        latest = state["latest"]
        if latest is not None and month < month_add(latest, -keep):
            return False, None  # older than any evaluation (and its year-earlier) can look
        key = f"{w.account_id}|{w.energy_type}|{_iso(w.window_start)}"
        previous = self.windows.get(key)
        change = window_delta(previous, w.revision, w.tco2e)
        if change is None:
            return False, None  # a replay or an older revision: already counted
        delta, revised = change
        self.windows[key] = [w.revision, w.tco2e, w.factor_version]
        if partition is not None:
            state["partition"] = partition
        state["months"][month] = state["months"].get(month, 0.0) + delta
        state["latest"] = max(latest or month, month)
        factor = revised and previous is not None and previous[2] != w.factor_version
        return True, window_trigger(latest, month, factor)

    def _months_kept(self, account: dict[str, Any] | None) -> int:
        # the evaluation window and the same months a year earlier, before the open month
        rule = self.rules.rule_for(account["area"], account["industry_code"]) if account else None
        return (rule.window_months if rule else self.rules.default.window_months) + 12

    def on_account(self, account: Account, partition: int | None = None) -> list[AccountLabel]:
        """A registry entry: store it and re-evaluate the account.

        Residents (millions of them) are not labelled: they are not kept unless the
        account already has state here (its area changed).
        """
        if not is_labelled(account.area) and account.account_id not in self.accounts:
            return []
        state = self._state(account.account_id)
        before = state["account"]
        state["account"] = {k: v for k, v in account.asdict().items()}
        if partition is not None:
            state["partition"] = partition
        same = before is not None and all(
            before.get(f) == state["account"].get(f)
            for f in ("area", "industry_code", "region", "timezone")
        )
        return self._evaluate(
            account.account_id, state, None if same else LabelReason.REGISTRY_CHANGE
        )

    def on_account_deleted(self, account_id: str) -> list[AccountLabel]:
        """A registry tombstone: forget the account's reference data (its windows stay)."""
        state = self._state(account_id)
        state["account"] = None
        self.accounts[account_id] = state
        return []

    def on_denominator(
        self, d: Denominator | None, key: str, partition: int | None = None
    ) -> list[AccountLabel]:
        """A denominator (None: its tombstone, for `key`): re-evaluate its account."""
        account_id, _, start = key.partition("|")
        if d is not None:
            account_id, start = d.account_id, _iso(d.period_start)
        state = self._state(account_id)
        if partition is not None:
            state["partition"] = partition
        denominators = dict(state["denominators"])
        if d is None:
            denominators.pop(start, None)
        else:
            denominators[start] = [_iso(d.period_start), _iso(d.period_end), d.value]
        state["denominators"] = denominators
        return self._evaluate(account_id, state, LabelReason.DENOMINATOR_CHANGE)

    def on_benchmark(
        self, b: Benchmark | None, key: str, partition: int | None = None
    ) -> list[AccountLabel]:
        """A benchmark (None: its tombstone): re-evaluate the accounts it applies to.

        Only accounts that arrived on `partition` are evaluated (the benchmark reaches
        every partition; each account is evaluated once, by its own partition's copy).
        """
        old = self.benchmarks.get(key)
        if b is None:
            self.benchmarks.pop(key, None)
        else:
            self.benchmarks[key] = b.asdict() | {
                "period_start": _iso(b.period_start),
                "period_end": _iso(b.period_end),
            }
        self._bench_cache = None
        scopes = [benchmark_value(x) for x in (b, decode(Benchmark, old) if old else None) if x]
        out: list[AccountLabel] = []
        for account_id, state in list(self.accounts.items()):
            account = state.get("account")
            if not account or (partition is not None and state.get("partition") != partition):
                continue
            if any(
                s.applies_to(account["area"], account["industry_code"], account["region"])
                for s in scopes
            ):
                out += self._evaluate(account_id, dict(state), LabelReason.BENCHMARK_CHANGE)
        return out

    # ------------------------------------------------------------ evaluation

    def _evaluate(
        self, account_id: str, state: dict[str, Any], trigger: LabelReason | None
    ) -> list[AccountLabel]:
        # stores `state` and, given a trigger, evaluates the account; a label on change
        account = state["account"]
        if trigger is None or account is None or state["latest"] is None:
            self.accounts[account_id] = state
            return []
        if not is_labelled(account["area"]):
            self.accounts[account_id] = state
            return []
        if self.on_evaluate is not None:
            self.on_evaluate(account_id, trigger)
        LABEL_EVALUATIONS.labels(trigger=trigger.value).inc()
        previous = LabelState.from_json(state["label"])
        evaluation = evaluate(
            monthly_tco2e=state["months"],
            latest_month=state["latest"],
            timezone=account["timezone"],
            area=account["area"],
            industry_code=account["industry_code"],
            region=account["region"],
            denominators=[
                DenominatorValue(_dt(s), _dt(e), v) for s, e, v in state["denominators"].values()
            ],
            benchmarks=self._benchmarks(),
            rule=self.rules.rule_for(account["area"], account["industry_code"]),
            previous=previous,
        )
        new_state, reason = decide(previous, evaluation, trigger)
        state["label"] = new_state.as_json()
        self.accounts[account_id] = state
        if reason is None:
            return []
        LABEL_CHANGES.labels(area=account["area"], colour=str(new_state.colour or "none")).inc()
        return [
            AccountLabel(
                account_id=account_id,
                area=account["area"],
                industry_code=account["industry_code"],
                region=account["region"],
                old_colour=previous.colour.value if previous and previous.colour else None,
                new_colour=new_state.colour.value if new_state.colour else None,
                k=evaluation.k,
                intensity=evaluation.intensity,
                benchmark=evaluation.benchmark,
                benchmark_version=evaluation.benchmark_version,
                period_start=evaluation.period_start,
                period_end=evaluation.period_end,
                reason=reason.value,
                revision=new_state.revision,
                ts=self.clock(),
            )
        ]


def register(
    app: faust.App, settings: Settings, *, topic: Callable[[str], str] = lambda name: name
) -> None:
    """Add the labelling agents and tables to `app`.

    `topic` maps a topic name to the one to use (tests give each run its own topics).
    """
    partitions = settings.kafka.partitions
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    windows_t, registry_t, denominators_t, benchmarks_t, labels_t = (topic(n) for n in TOPICS)
    fanout_name = f"{settings.streams.app_id}-labelling-benchmarks"
    # internal: declared with `partitions` when its agent starts (never auto-created)
    fanout = app.topic(fanout_name, internal=True, partitions=partitions, **raw)
    source = app.topic(windows_t, registry_t, denominators_t, **raw)
    # written behind: the book's writes go to the tables' data at once and to their
    # changelogs by `snapshot`, which then acks the messages behind them
    tables = [
        DeferredTable(
            app.Table(f"labelling-{name}", partitions=partitions, extra_topic_configs=COMPACTION)
        )
        for name in ("accounts", "windows", "benchmarks")
    ]
    book = LabelBook(
        load_rulebook(settings),
        settings.streams.timezone,
        accounts=tables[0],
        windows=tables[1],
        benchmarks=tables[2],
    )
    topics = (registry_t, denominators_t, fanout_name)
    held: list[tuple[faust.StreamT, faust.types.EventT]] = []  # to ack after a snapshot

    async def snapshot() -> None:
        """Write the keys changed since the last snapshot to the changelogs, then ack
        the messages that changed them (labels sent before them are stored first)."""
        events = held[:]
        held.clear()
        taken = [(t, t.take()) for t in tables]
        if not events and not any(dirty for _, dirty in taken):
            return
        try:
            await app.producer.flush()
            for t, dirty in taken:
                changelog = t.table.changelog_topic.get_topic_name()
                await send_records(app, changelog, t.records(dirty))
            await app.producer.flush()
        except BaseException:
            for t, dirty in taken:
                t.restore(dirty)
            held[:0] = events
            raise
        for stream, event in events:
            await stream.ack(event)

    # not an app.timer: those end when the app starts stopping, and Faust's stop then
    # waits for every message to be acked, which only a snapshot does
    start_before_consumer(app, Ticker(_SNAPSHOT_SECONDS, snapshot))

    @app.on_partitions_revoked.connect
    async def _forget_revoked(sender: object, revoked: set[Any], **_: Any) -> None:
        # their new owner recovers them from the changelogs and reads their messages again
        mine = {windows_t, registry_t, denominators_t, fanout_name}
        gone = {tp.partition for tp in revoked if tp.topic in mine}
        for t in tables:
            t.forget(gone)
        held[:] = [(s, e) for s, e in held if e.message.partition not in gone]

    @app.on_rebalance_complete.connect
    async def _recovered(sender: object, **_: object) -> None:
        book.reload()  # the benchmarks table may hold rows recovered from its changelog

    async def _reject(event: faust.types.EventT, topic_name: str, exc: ContractError) -> None:
        # the record verbatim, with its content-type if it had one: the message, or the
        # bad row of an Arrow batch on its own (a one-row batch)
        msg = event.message
        value, fmt = msg.value, (event.headers or {}).get(FORMAT_HEADER)
        if exc.row is not None:
            value, fmt = arrow_row(msg.value, exc.row), ARROW_FORMAT
        headers = [(FORMAT_HEADER, fmt)] if fmt else []
        headers += dlq_headers(exc, topic=topic_name, partition=msg.partition, offset=msg.offset)
        await app.topic(dlq_topic(topic_name), **raw).send(
            key=msg.key, value=value, headers=headers
        )

    async def _consume(stream: faust.StreamT) -> None:
        # windows, registry and denominators on one agent, benchmarks on another: the same
        # partition numbers of all of them go to one worker (Faust co-partitions topics of
        # equal partition counts), and the agents share the book without awaiting inside it
        manual = stream.noack()  # acked by `snapshot`, once what they changed is stored
        async for event in manual.events():
            await _handle(event)
            held.append((manual, event))
            if len(held) >= _MAX_HELD:
                await snapshot()

    async def _handle(event: faust.types.EventT) -> None:
        msg = event.message
        for t in tables:
            t.partition = msg.partition  # the changelog partition of what this writes
        source_topic = benchmarks_t if msg.topic == fanout_name else msg.topic
        if msg.topic == windows_t:
            # one JSON window or an Arrow batch of many (all of this partition's
            # accounts); a bad row is rejected alone, the others go on
            windows = _windows_of(msg.value, event.headers)
            EVENTS_IN.labels(agent=AGENT).inc(len(windows))  # windows, not messages
            out = _on_windows(book, windows, msg.partition)
            for w in windows:
                if isinstance(w, ContractError):
                    await _reject(event, source_topic, w)
        else:
            EVENTS_IN.labels(agent=AGENT).inc()
            try:
                key = (msg.key or b"").decode()
                out = _dispatch(book, msg.topic, key, msg.value, msg.partition, topics=topics)
            except ContractError as exc:
                await _reject(event, source_topic, exc)
                return
        for lab in out:
            # straight to the producer, keyed (its partitioner, as Topic.send's): Faust's
            # Topic.send cost ~0.6 ms a label, ~2 s for a month's close of 3,333 changes;
            # `snapshot` flushes the producer before it acks the windows behind them
            await app.producer.send(
                labels_t, lab.account_id.encode(), lab.dumps(), None, None, None
            )
            EVENTS_OUT.labels(agent=AGENT, topic=labels_t).inc()

    @app.agent(app.topic(benchmarks_t, **raw), name="labelling-benchmark-fanout")
    async def fan_out(stream: faust.StreamT) -> None:
        # copy every benchmark (and tombstone) to every partition of the internal topic
        async for event in stream.events():
            msg = event.message
            if msg.value is not None:
                try:
                    validate(decode_json(Benchmark, msg.value))
                except ContractError as exc:
                    await _reject(event, benchmarks_t, exc)
                    continue
            for p in range(partitions):
                await fanout.send(key=msg.key, value=msg.value, partition=p)

    app.agent(source, name="labelling")(_consume)
    app.agent(fanout, name="labelling-benchmarks")(_consume)


#: the fields of a window the book reads (`WindowFields`), from an Arrow batch
_Window = namedtuple("_Window", list(WindowFields.__annotations__))


def _windows_of(value: bytes | None, headers: Any) -> list[Any]:
    # every window of one emissions.windows message, in row order (a tombstone: none):
    # checked rows, with the window's fields as attributes (no Faust Record each); an
    # Arrow batch whose rows are all good is read by columns, only the fields used
    if value is None:
        return []
    if message_format(headers) == ARROW_FORMAT:
        table = checked_arrow(EmissionWindow, value)
        if table is not None:
            columns = [arrow_column(table, name) for name in _Window._fields]
            return list(map(_Window._make, zip(*columns, strict=True)))
    return [
        row if isinstance(row, ContractError) else SimpleNamespace(**row)
        for row in rows_from_message(EmissionWindow, value, headers)
    ]


def _on_windows(book: LabelBook, windows: list[Any], partition: int) -> list[AccountLabel]:
    # a message's windows through the book together (each account evaluated on whole
    # months, never between a month's rows), without awaiting (the agents share the
    # book); the rejected ones are skipped, the caller sends them to the DLQ
    return book.on_windows((w for w in windows if not isinstance(w, ContractError)), partition)


def _dispatch(
    book: LabelBook,
    name: str,
    key: str,
    value: bytes | None,
    partition: int,
    *,
    topics: tuple[str, str, str],
) -> list[AccountLabel]:
    # one record of the registry, the denominators or the benchmarks' fan-out
    registry_t, denominators_t, fanout_t = topics
    if name == registry_t:
        if value is None:
            return book.on_account_deleted(key)
        account = decode_json(Account, value)
        validate(account)
        return book.on_account(account, partition)
    if name == denominators_t:
        d = None if value is None else decode_json(Denominator, value)
        if d is not None:
            validate(d)
        return book.on_denominator(d, key, partition)
    if name == fanout_t:
        b = None if value is None else decode_json(Benchmark, value)
        if b is not None:
            validate(b)
        return book.on_benchmark(b, benchmark_key(b) if b else key, partition)
    log.warning("labelling: record from unexpected topic %s", name)
    return []
