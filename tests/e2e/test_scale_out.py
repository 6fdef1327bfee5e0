"""Scale-out: two and four workers in one consumer group split the partitions, and their
combined emission windows equal one worker's (and `carbon-accounts replay`'s) on the same
readings; a worker killed mid-run is replaced by a rebalance and the results stay exact.

The same readings are consumed three times from `meter.readings` of this module's own
broker (the standard topic names: a test elsewhere on the session broker may have made
them with another partition count first): by a group of two `carbon-accounts worker
--agents accounting` processes, by a group of four, then by a group of one. All groups
write to the one `emissions.windows` topic, so each run's windows are read from the end
offsets taken before it started; our accounts carry a unique suffix.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.partitioner import DefaultPartitioner

from infra.broker import EmbeddedBroker
from schemas.codec import ARROW_FORMAT, FORMAT_HEADER, records_from_message, to_arrow
from schemas.contracts import EmissionWindow, Reading
from schemas.errors import ContractError
from schemas.settings import Settings
from streams.cli.replay_cmd import replay
from streams.runtime import create_topics

T0 = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This module's broker: its workers use the standard topic names, which must have
    `kafka.partitions` partitions (seen: another test's two made the split [{0}, {1}])."""
    data = tmp_path_factory.mktemp("scale-out-kafka")
    with EmbeddedBroker(data / "data", log_file=data / "broker.log") as broker:
        yield broker.bootstrap


ENERGY = [("electricity", "kWh"), ("natural_gas", "Nm3")]
Key = tuple[str, str, str]


def _readings(unique: str) -> list[dict[str, Any]]:
    """8 accounts x 2 meters, 8 hourly cumulative readings each (values by hand below)."""
    out = []
    for a in range(8):
        for m in range(2):
            et, unit = ENERGY[m]
            for c in range(8):
                out.append(
                    {
                        "meter_id": f"S{a}-{m}-{unique}",
                        "account_id": f"S{a}-{unique}",
                        "energy_type": et,
                        "kind": "cumulative",
                        # 4 + a + m per hour: 1 + a/4 + m/4 per 15-minute window
                        "value": 100.0 + c * (4 + a + m),
                        "unit": unit,
                        "ts": (T0 + timedelta(hours=c)).isoformat(),
                        "quality": "good",
                        "source": "test",
                        "seq": c,
                        "counter_max": None,
                        "period_start": None,
                    }
                )
    return out


async def _produce(bootstrap: str, readings: list[dict[str, Any]]) -> None:
    """One Arrow batch per account and hour, in event-time order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        batches: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in readings:
            row = {**r, "ts": datetime.fromisoformat(r["ts"])}
            batches.setdefault((r["ts"], r["account_id"]), []).append(row)
        for (_ts, account), rows in sorted(batches.items()):
            await producer.send(
                "meter.readings",
                to_arrow(Reading, rows),
                key=account.encode(),
                headers=[(FORMAT_HEADER, ARROW_FORMAT)],
            )
        await producer.flush()
    finally:
        await producer.stop()


def _start(
    bootstrap: str, group: str, tmp: Path, name: str, **extra: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CARBON_ACCOUNTS_DATA_DIR": str(tmp / name),
        "CARBON_ACCOUNTS_STREAMS_APP_ID": group,
        "CARBON_ACCOUNTS_METRICS_ENABLED": "false",
        **extra,
    }
    with (tmp / f"{name}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "--agents", "accounting"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        w.terminate()
    for w in workers:
        try:
            w.wait(timeout=30)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait(timeout=10)


async def _members(bootstrap: str, group: str, want: int, timeout: float) -> list[set[int]]:
    """Per member of `group`, its `meter.readings` partitions, once it has exactly `want`
    members and is stable (or what it has at the timeout)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        split: list[set[int]] = []
        while time.monotonic() < deadline:
            # DescribeGroups response: groups of (error, id, state, protocol type, protocol,
            # members)
            groups = [g for r in await admin.describe_consumer_groups([group]) for g in r.groups]
            state, members = groups[0][2], groups[0][5]
            # member: (id, client id, host, metadata, assignment)
            split = [_partitions(m[4]) for m in members]
            if len(split) == want and state == "Stable" and all(split):
                return split
            await asyncio.sleep(0.5)
        return split
    finally:
        await admin.close()


def _partitions(assignment: bytes) -> set[int]:
    """The `meter.readings` partitions in a member's (standard) consumer assignment."""
    if not assignment:
        return set()
    decoded = ConsumerProtocolMemberAssignment.decode(assignment)
    return {p for topic, parts in decoded.assignment if topic == "meter.readings" for p in parts}


async def _committed(bootstrap: str, group: str, timeout: float) -> bool:
    """Wait until `group` has committed every `meter.readings` partition to its end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition("meter.readings", p) for p in range(Settings().kafka.partitions)]
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = await admin.list_consumer_group_offsets(group)
            if all(tp in done and done[tp].offset >= end for tp, end in ends.items()):
                return True
            await asyncio.sleep(0.5)
        return False
    finally:
        await consumer.stop()
        await admin.close()


async def _covering(bootstrap: str, group: str, n: int, timeout: float) -> list[set[int]]:
    """The partitions of the members of `group` that hold some, once the group is stable
    and they split all `n` between them (a dead member may still be listed, holding none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        split: list[set[int]] = []
        while time.monotonic() < deadline:
            groups = [g for r in await admin.describe_consumer_groups([group]) for g in r.groups]
            state, members = groups[0][2], groups[0][5]
            split = [p for p in (_partitions(m[4]) for m in members) if p]
            whole = sorted(p for part in split for p in part) == list(range(n))
            if state == "Stable" and whole:
                return split
            await asyncio.sleep(0.5)
        return split
    finally:
        await admin.close()


async def _ends(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic("emissions.windows") or set()
        if not parts:
            await consumer.topics()
            parts = consumer.partitions_for_topic("emissions.windows") or set()
        tps = [TopicPartition("emissions.windows", p) for p in sorted(parts)]
        return await consumer.end_offsets(tps)
    finally:
        await consumer.stop()


async def _windows(
    bootstrap: str,
    start: dict[TopicPartition, int],
    unique: str,
    want: dict[Key, dict[str, Any]],
    workers: list[subprocess.Popen[bytes]],
    timeout: float,
    hung: Any = None,
) -> dict[Key, dict[str, Any]]:
    """Latest revision per window of our accounts written since `start`, until == want."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    final: dict[Key, dict[str, Any]] = {}
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and all(w.poll() is None for w in workers):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    # one JSON window or an Arrow batch of many a message
                    for w in records_from_message(EmissionWindow, r.value, r.headers):
                        assert not isinstance(w, ContractError), w
                        if not w.account_id.endswith(unique):
                            continue
                        key = (w.account_id, w.energy_type, w.window_start.isoformat())
                        if key not in final or w.revision > final[key]["revision"]:
                            final[key] = w.asdict()
            if _comparable(final) == _comparable(want) or (hung is not None and hung()):
                break
        return final
    finally:
        await consumer.stop()


def _comparable(windows: dict[Key, dict[str, Any]]) -> dict[Key, tuple[Any, ...]]:
    return {
        k: (round(w["consumption"], 9), round(w["tco2e"], 12), w["factor_id"], w["revision"])
        for k, w in windows.items()
    }


def _run(
    bootstrap: str, unique: str, tmp: Path, n: int, readings: list[dict[str, Any]],
    want: dict[Key, dict[str, Any]], skip_hang: bool = False,
) -> tuple[list[set[int]], dict[Key, dict[str, Any]]]:  # fmt: skip
    group = f"scale-{n}-{unique}"
    start = asyncio.run(_ends(bootstrap))
    workers = [_start(bootstrap, group, tmp, f"g{n}w{i}") for i in range(n)]
    try:
        # produce only once the group is stable: the split is what we test, not a rebalance
        members = asyncio.run(_members(bootstrap, group, n, 40))
        if len(members) != n and skip_hang:
            _skip_if_hung(tmp, [f"g{n}w{i}" for i in range(n)], refused=True)
        assert len(members) == n, f"{members}: not {n} workers with partitions: {_tail(tmp)}"
        asyncio.run(_produce(bootstrap, readings))
        # bounded; on an idle machine a run takes seconds, on a loaded shared one a minute
        got = asyncio.run(_windows(bootstrap, start, unique, want, workers, 90))
        return members, got
    finally:
        _stop(workers)


def _tail(tmp: Path) -> str:
    return " | ".join(p.read_text()[-800:] for p in sorted(tmp.glob("*.log")))


def _expected(
    bootstrap: str, unique: str, tmp_path: Path
) -> tuple[Settings, str, list[dict[str, Any]], dict[Key, dict[str, Any]]]:
    """Topics, readings whose 8 accounts fall on 8 partitions, and replay's windows."""
    settings = Settings(data_dir=str(tmp_path / "var"))
    asyncio.run(create_topics(settings, bootstrap))
    tag = _spread(unique, settings.kafka.partitions)  # every worker accounts some
    readings = _readings(tag)
    expected, rejected = replay([json.dumps(r) for r in readings], settings)
    assert rejected == {}
    # 7 hours of intervals x 4 windows, per account and energy type
    assert len(expected) == 8 * 2 * 7 * 4
    by_hand = {(w["account_id"], w["energy_type"]): w["consumption"] for w in expected}
    for a in range(8):
        for m, (et, _unit) in enumerate(ENERGY):
            assert by_hand[(f"S{a}-{tag}", et)] == (4 + a + m) / 4
    want = {(w["account_id"], w["energy_type"], w["window_start"]): w for w in expected}
    return settings, tag, readings, want


def _split_all(split: list[set[int]], n: int) -> None:
    # the workers split the partitions: disjoint, together all of them
    assert sum(len(p) for p in split) == n, split
    assert set().union(*split) == set(range(n)), split


def test_two_workers_equal_one(bootstrap: str, unique: str, tmp_path: Path) -> None:
    settings, tag, readings, want = _expected(bootstrap, unique, tmp_path)
    split, two = _run(bootstrap, tag, tmp_path, 2, readings, want)
    _split_all(split, settings.kafka.partitions)
    assert _comparable(two) == _comparable(want), f"{len(two)} of {len(want)}: {_tail(tmp_path)}"
    _, one = _run(bootstrap, tag, tmp_path, 1, readings, want)
    assert _comparable(one) == _comparable(want), f"{len(one)} of {len(want)}: {_tail(tmp_path)}"
    assert _comparable(two) == _comparable(one)


def test_four_workers_equal_one(bootstrap: str, unique: str, tmp_path: Path) -> None:
    """Four workers, then one. Four staggered joins make several start-up rebalances: the
    embedded broker may refuse a commit in one and hang the group (see
    test_killed_worker_is_replaced); the test then skips, naming it. (It was opt-in while
    Faust kept standby replicas: every worker then read the others' changelogs, and 2 of
    3 runs under load stalled; without them it passed 4 of 4, in 15 s alone.)"""
    settings, tag, readings, want = _expected(bootstrap, unique, tmp_path)
    split, four = _run(bootstrap, tag, tmp_path, 4, readings, want, skip_hang=True)
    if _comparable(four) != _comparable(want):
        _skip_if_hung(tmp_path, [f"g4w{i}" for i in range(4)], refused=True)
    _split_all(split, settings.kafka.partitions)
    assert _comparable(four) == _comparable(want), f"{len(four)} of {len(want)}: {_tail(tmp_path)}"
    _, one = _run(bootstrap, tag, tmp_path, 1, readings, want)
    assert _comparable(one) == _comparable(want), f"{len(one)} of {len(want)}: {_tail(tmp_path)}"
    assert _comparable(four) == _comparable(one)


#: short group timeouts for the kill test (defaults: 60 s session, 60 s rebalance)
TIMEOUTS = {
    "CARBON_ACCOUNTS_STREAMS_SESSION_TIMEOUT_SECONDS": "6",
    "CARBON_ACCOUNTS_STREAMS_HEARTBEAT_INTERVAL_SECONDS": "1",
    "CARBON_ACCOUNTS_STREAMS_REBALANCE_TIMEOUT_SECONDS": "8",
}


def _spread(unique: str, n: int) -> str:
    """A suffix for which the 8 accounts S0..S7-<suffix> fall on 8 different partitions
    (of `n` >= 8), so every member of a group holds some of them."""
    partitioner = DefaultPartitioner()
    every = list(range(n))
    for i in range(100_000):  # each try succeeds with probability 8!/8^8 for n = 8
        tag = f"{unique}{i}"
        if len({partitioner(f"S{a}-{tag}".encode(), every, every) for a in range(8)}) == 8:
            return tag
    raise AssertionError("no suffix spreads the accounts")


def _hours(readings: list[dict[str, Any]], first: int, last: int) -> list[dict[str, Any]]:
    """The readings of hours `first`..`last` (inclusive) after T0."""
    lo, hi = T0 + timedelta(hours=first), T0 + timedelta(hours=last)
    return [r for r in readings if lo <= datetime.fromisoformat(r["ts"]) <= hi]


def _before(want: dict[Key, dict[str, Any]], hour: int) -> dict[Key, dict[str, Any]]:
    """The windows that start before hour `hour`: those the readings up to it complete."""
    end = T0 + timedelta(hours=hour)
    return {k: w for k, w in want.items() if datetime.fromisoformat(k[2]) < end}


def _leader(tmp: Path, names: list[str]) -> int:
    """Which of the workers `names` is its group's leader (the member that assigns)."""
    leaders = [i for i, n in enumerate(names) if "Elected group leader" in _log(tmp, n)]
    assert len(leaders) == 1, leaders
    return leaders[0]


def _log(tmp: Path, name: str) -> str:
    return (tmp / f"{name}.log").read_text()


def _hung(tmp: Path, names: list[str], refused: bool = False) -> str | None:
    """How the embedded broker hung the group after the kill, if it did: a worker that
    joins the same generation again and again is answered by a leader that is no longer a
    member (see the test's docstring)."""
    for name in names:
        stall = re.search(
            r"No event received for active tp (TopicPartition\([^)]*\))", _log(tmp, name)
        )
        if stall:
            return (
                f"Faust's recovery in {name} stalled on changelog {stall.group(1)} "
                "(no event received for an active partition), a stall seen here only under load"
            )
        if "IllegalGenerationError" in _log(tmp, name) and refused:
            return (
                f"embedded broker refused {name}'s offset commit during a rebalance "
                "(IllegalGeneration; Kafka accepts it) and the group never settled: its "
                "leader rejoined under a new member id, the broker kept naming the old one"
            )
        joins = re.findall(r"Joined group '[^']+' \(generation (\d+)\)", _log(tmp, name))
        for gen in set(joins):
            if joins.count(gen) >= 3:
                return (
                    f"embedded broker hung the group after the kill: {name} joined generation "
                    f"{gen} {joins.count(gen)} times without an assignment (a leader that is "
                    "no member); the results before the hang were exact"
                )
    return None


def _skip_if_hung(tmp: Path, names: list[str], refused: bool = False) -> None:
    """Skip (not pass) when the broker hung the group; any other shortfall fails."""
    reason = _hung(tmp, names, refused)
    if reason:
        pytest.skip(reason)


def test_killed_worker_is_replaced(bootstrap: str, unique: str, tmp_path: Path) -> None:
    """Two workers; after a first round of readings one is killed with SIGKILL (no clean
    leave, no flush, no commit). A replacement joins, the group rebalances, the killed
    worker's partitions are taken over with their state recovered from the changelog, and
    the second and third rounds are accounted. The latest revision per window then equals
    replay's.

    Exactness after the kill needs the killed worker's state: readings are cumulative, so
    an account's first interval after the kill is the difference to its last reading
    before it, which only the recovered `accounting-state` holds (lost state loses that
    interval's windows; re-processing uncommitted messages without it would revise windows;
    either changes the comparison below).

    The embedded broker (noida-db 0.2.3) never expires a dead member, neither after its
    session timeout nor after a rebalance timeout, and a group whose leader died stays in
    CompletingRebalance for good; so does a group whose leader's offset commit the broker
    refuses (IllegalGeneration) while a rebalance is being prepared: the leader rejoins with
    a new member id and the broker keeps naming the old one leader (README, "Running at
    scale"). So the killed worker here is the follower, it dies once the group has committed
    what it read, and its partitions move when the replacement joins, before the second
    round is published; on Kafka the survivor alone takes them after
    `session_timeout_seconds`, whenever the kill comes. Even so the broker sometimes
    forgets the survivor's member id right after that rebalance, the survivor rejoins,
    a commit of its lands in the new rebalance and the group hangs as above (4 of 15
    runs here, more often under load); the test then skips with that reason (`_hung`: a
    worker joining one generation 3 times), never passes: every other shortfall fails it.
    """
    settings = Settings(data_dir=str(tmp_path / "var"))
    asyncio.run(create_topics(settings, bootstrap))
    n = settings.kafka.partitions
    tag = _spread(unique, n)
    readings = _readings(tag)
    expected, rejected = replay([json.dumps(r) for r in readings], settings)
    assert rejected == {}
    want = {(w["account_id"], w["energy_type"], w["window_start"]): w for w in expected}
    assert len(want) == 8 * 2 * 7 * 4  # 7 hourly intervals x 4 windows per account and type
    group = f"kill-{unique}"
    start = asyncio.run(_ends(bootstrap))
    names = ["k0", "k1"]
    workers = [_start(bootstrap, group, tmp_path, name, **TIMEOUTS) for name in names]
    try:
        split = asyncio.run(_members(bootstrap, group, 2, 40))
        assert len(split) == 2 and not split[0] & split[1], f"{split}: {_tail(tmp_path)}"
        # one account per partition: the worker killed holds accounts, and their state
        # (the first round's readings) is needed after the kill
        assert all(split), split
        asyncio.run(_produce(bootstrap, _hours(readings, 0, 3)))
        first = _before(want, 3)
        got = asyncio.run(_windows(bootstrap, start, tag, first, workers, 60))
        if _comparable(got) != _comparable(first):
            _skip_if_hung(tmp_path, names)
        assert _comparable(got) == _comparable(first), _tail(tmp_path)

        # the kill comes once the group has committed what it read: a commit that the
        # embedded broker refuses during the rebalance hangs the group (see the docstring)
        assert asyncio.run(_committed(bootstrap, group, 40)), _tail(tmp_path)
        leader = _leader(tmp_path, names)
        killed, survivor = workers[1 - leader], workers[leader]
        killed.kill()
        killed.wait(timeout=10)
        replacement = _start(bootstrap, group, tmp_path, "k2", **TIMEOUTS)
        workers.append(replacement)
        names.append("k2")
        live = [survivor, replacement]
        # both live workers hold partitions, together all of them (the dead one none)
        split = asyncio.run(_covering(bootstrap, group, n, 40))
        if len(split) != 2:
            _skip_if_hung(tmp_path, names)
        assert len(split) == 2, f"{split}: {_tail(tmp_path)}"
        asyncio.run(_produce(bootstrap, _hours(readings, 4, 5)))
        second = _before(want, 5)
        hung = lambda: _hung(tmp_path, names) is not None  # noqa: E731
        got = asyncio.run(_windows(bootstrap, start, tag, second, live, 60, hung))
        if _comparable(got) != _comparable(second):
            _skip_if_hung(tmp_path, names)
        assert _comparable(got) == _comparable(second), (
            f"{len(got)} of {len(second)}: {_tail(tmp_path)}"
        )
        asyncio.run(_produce(bootstrap, _hours(readings, 6, 7)))
        got = asyncio.run(_windows(bootstrap, start, tag, want, live, 60, hung))
        if _comparable(got) != _comparable(want):
            _skip_if_hung(tmp_path, names)
        assert _comparable(got) == _comparable(want), (
            f"{len(got)} of {len(want)}: {_tail(tmp_path)}"
        )
    finally:
        _stop(workers)
