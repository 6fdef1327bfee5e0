"""The disk spool: order, commit, torn records, the bound; and the whole promise end to end:
stop the broker, keep collecting, kill -9 the collector, restart both, and every reading
reaches the topic exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from collectors.metrics import SPOOL_DROPPED
from collectors.simulator import Fleet, Simulator
from collectors.spool import Spool, SpoolRecord
from infra.broker import EmbeddedBroker, ensure_topics, free_port
from schemas.codec import readings_from_message
from schemas.dlq import dlq_topic
from tests.collectors.conftest import consume


def _record(i: int, size: int = 10) -> SpoolRecord:
    return SpoolRecord(
        topic="t",
        key=f"k{i}".encode(),
        value=bytes([i % 256]) * size,
        headers=[("h", b"\x00\xff")],
        counts={"dev|modbus": i},
        readings=i,
    )


def test_records_come_back_in_order_and_commit_survives_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=2**20)
    spool.append([_record(1), _record(2)])
    spool.append([_record(3)])
    got = spool.read()
    assert [(r.key, r.value, r.readings, r.headers) for r in got] == [
        (b"k1", b"\x01" * 10, 1, [("h", b"\x00\xff")]),
        (b"k2", b"\x02" * 10, 2, [("h", b"\x00\xff")]),
        (b"k3", b"\x03" * 10, 3, [("h", b"\x00\xff")]),
    ]
    assert spool.read() == []
    assert spool.backlog_readings == 6
    spool.commit(got[1].position, 1 + 2)
    assert spool.backlog_readings == 3
    spool.close()
    again = Spool(tmp_path, max_bytes=2**20)  # a restart: only the uncommitted record is left
    assert [r.key for r in again.read()] == [b"k3"] and again.backlog_readings == 3
    again.rewind()  # a failed send reads from the committed position again
    assert [r.key for r in again.read()] == [b"k3"]


def test_a_torn_last_record_is_cut_off(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=2**20)
    spool.append([_record(1), _record(2)])
    spool.close()
    (segment,) = sorted(tmp_path.glob("*.seg"))
    whole = segment.stat().st_size
    with segment.open("ab") as f:  # killed half way through writing a third record
        f.write(_record(3).encode()[:15])
    again = Spool(tmp_path, max_bytes=2**20)
    assert [r.key for r in again.read()] == [b"k1", b"k2"]
    assert segment.stat().st_size == whole
    again.append([_record(4)])  # appends go on after the cut
    assert [r.key for r in again.read()] == [b"k4"]


def test_segments_roll_are_deleted_once_committed_and_the_bound_drops_the_oldest(
    tmp_path: Path,
) -> None:
    one = len(_record(1, 1000).encode())  # bytes of one record
    spool = Spool(tmp_path, max_bytes=10 * one, segment_bytes=3 * one)
    for i in range(1, 7):
        spool.append([_record(i, 1000)])
    # segments of 3 records each: 1-3, 4-6 (a segment rolls once it reached 3 records)
    assert len(list(tmp_path.glob("*.seg"))) == 2
    got = spool.read()
    spool.commit(got[3].position, 1 + 2 + 3 + 4)  # up to record 4: the first segment goes
    assert len(list(tmp_path.glob("*.seg"))) == 1
    assert spool.backlog_readings == 5 + 6
    dropped = SPOOL_DROPPED._value.get()
    for i in range(7, 17):  # 12 records waiting > the bound of 10: the oldest segment goes
        spool.append([_record(i, 1000)])
    assert spool.backlog_bytes <= 10 * one
    left = spool.read()
    # the segment holding 5 and 6 (4 was committed) was dropped, then 7-9: 5+6+7+8+9 lost
    assert SPOOL_DROPPED._value.get() - dropped == 5 + 6 + 7 + 8 + 9
    assert [r.readings for r in left] == list(range(10, 17))
    assert spool.backlog_readings == sum(range(10, 17))


def _collector(devices: Path, topic: str, data: Path, bootstrap: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CARBON_ACCOUNTS_DATA_DIR": str(data),
        "CARBON_ACCOUNTS_METRICS_ENABLED": "false",
    }
    cmd = [sys.executable, "-m", "streams", "collect", "--devices", str(devices), "--topic", topic]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    return out


async def test_kill_9_while_spooling_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    port = free_port()
    broker = EmbeddedBroker(tmp_path / "kafka", port=port, log_file=tmp_path / "broker.log")
    broker.start()
    topic = "meter.readings.spooltest"
    await ensure_topics(broker.bootstrap, [(topic, 2, False), (dlq_topic(topic), 2, False)])
    data = tmp_path / "var"
    devices = tmp_path / "devices.yaml"
    simulator = Simulator(Fleet(8, speed=1.0, opcua_share=0.25), tick=0.1)
    procs: list[subprocess.Popen[str]] = []
    try:
        await simulator.start()
        simulator.write_device_map(devices, interval=0.2)
        procs.append(_collector(devices, topic, data, broker.bootstrap))
        await asyncio.sleep(3.0)  # publishing normally
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(2.5)  # Kafka down: readings go to the spool only
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        # what the killed collector had spooled and not published
        spool = Spool(data / "spool", max_bytes=2**30)
        stranded = {
            (r.meter_id, r.ts)
            for record in spool.read(10**6)
            if record.topic == topic
            for r in readings_from_message(record.value, dict(record.headers))
        }
        spool.close()
        # 2.5 s x 8 meters at 5 reads a second would be 100; a loaded machine reads fewer
        assert len({m for m, _ in stranded}) == 8 and len(stranded) >= 16, len(stranded)
        broker = EmbeddedBroker(tmp_path / "kafka", port=port, log_file=tmp_path / "broker.log")
        await asyncio.to_thread(broker.start)
        procs.append(_collector(devices, topic, data, broker.bootstrap))
        await asyncio.sleep(3.0)  # replays the spool, then collects on
        second = await asyncio.to_thread(_stop, procs[1])  # a clean stop drains and commits
        procs.append(_collector(devices, topic, data, broker.bootstrap))
        await asyncio.sleep(1.5)  # a clean restart must not publish anything again
        await asyncio.to_thread(_stop, procs[2])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        await simulator.stop()
    try:
        got = await consume(broker.bootstrap, topic, idle=1.5)
    finally:
        await asyncio.to_thread(broker.stop)
    keys = [(r.meter_id, r.ts) for r in got.readings]
    assert len(keys) == len(set(keys)), "a reading was published twice"
    assert stranded <= set(keys), f"{len(stranded - set(keys))} spooled readings were lost"
    assert ", 0 left in the spool" in second, second  # the clean stop drained it
    # every meter kept being read across all of it: before, during and after the outage
    assert {m for m, _ in keys} == {m.meter_id for m in simulator.fleet.meters}
    assert not list((data / "spool").glob("*.seg")) or Spool(data / "spool", 2**30).read() == []
