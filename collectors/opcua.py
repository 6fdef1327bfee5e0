"""The OPC-UA collector (asyncua): subscriptions and polling, security, reconnect.

Per device, one task keeps a session: it connects (security policy None, or
Basic256Sha256 Sign / SignAndEncrypt with the certificate files of the device map;
anonymous or user name and password), creates a subscription per `subscription` group
(data-change monitored items at the group's interval) and a polling task per `polling`
group (one Read of all its nodes per interval). When the session is lost (asyncua's
watchdog probes the server every second) it tears down and reconnects with
exponential backoff (0.5 s doubling to `reconnect_max_delay`, 30 s by default, with
jitter), then subscribes again: the
first notification of each monitored item carries the current value, so the only gap is
the outage itself.

A value's `ts` is its SourceTimestamp (else ServerTimestamp; `timestamp: server` or
`gather` as in Telegraf choose otherwise); its StatusCode's severity gives `quality`
(Good → good, Uncertain → uncertain, Bad → bad). A value that is not a number, is NaN,
or is Bad without a value goes to the DLQ with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import datetime
from typing import Any

from asyncua import Client, ua
from asyncua.crypto import security_policies

from collectors.devices import MeterSpec, OpcUaDevice, OpcUaGroup
from collectors.metrics import LAST_READ, READ_ERRORS, READINGS_READ
from collectors.publisher import Publisher
from collectors.readings import Sequencer, make_row, now_utc, scaled_value, truncate_ms
from schemas.errors import ContractError, ReasonCode

__all__ = ["APPLICATION_URI", "OpcUaCollector", "quality_of"]

log = logging.getLogger(__name__)

#: the application URI the collector presents; a client certificate's SAN URI should match it
APPLICATION_URI = "urn:carbon-accounts:collector"
_READ_CHUNK = 500  # nodes per Read request (servers cap MaxNodesPerRead)


def quality_of(status: ua.StatusCode | None) -> str:
    """The reading quality of an OPC-UA StatusCode, from its severity bits."""
    if status is None or status.is_good():
        return "good"
    if status.is_uncertain():
        return "uncertain"
    return "bad"


class _Handler:
    """asyncua subscription handler: hands every data change to the collector."""

    def __init__(self, collector: OpcUaCollector, group: OpcUaGroup) -> None:
        self.collector = collector
        self.group = group

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.collector._on_change(node.nodeid, data.monitored_item.Value)

    def status_change_notification(self, status: Any) -> None:
        log.info("opcua %s: subscription status %s", self.collector.device.name, status)


class OpcUaCollector:
    """Keeps one OPC-UA session and publishes its meters' values (see the module docstring)."""

    protocol = "opcua"

    def __init__(
        self,
        device: OpcUaDevice,
        publisher: Publisher,
        sequencer: Sequencer | None = None,
    ) -> None:
        self.device = device
        self.publisher = publisher
        self.seq = sequencer or Sequencer()
        self.max_backoff = device.reconnect_max_delay
        self.source = f"opcua://{device.name}"
        self.connects = 0  # sessions opened (1 + reconnects)
        self._by_node: dict[str, MeterSpec] = {}
        self._intervals = {m.meter_id: g.interval for g in device.groups for m in g.meters}
        self._pending: list[dict[str, Any]] = []
        self._flush_scheduled = False
        self._labels = {"device": device.name, "protocol": self.protocol}

    # ---------------------------------------------------------------- session

    async def _client(self) -> Client:
        d = self.device
        client = Client(d.endpoint, timeout=d.request_timeout, watchdog_intervall=1.0)
        client.application_uri = APPLICATION_URI
        client.name = client.description = "carbon-accounts collector"
        if d.security_policy != "None":
            policy = getattr(security_policies, f"SecurityPolicy{d.security_policy}")
            await client.set_security(
                policy,
                d.certificate,
                d.private_key,
                server_certificate=d.server_certificate or None,
                mode=getattr(ua.MessageSecurityMode, d.security_mode),
            )
        if d.auth_method == "UserName":
            client.set_user(d.username)
            client.set_password(d.password)
        return client

    async def run(self, stop: asyncio.Event) -> None:
        """Keep a session until `stop` is set, reconnecting with exponential backoff."""
        backoff = 0.5
        while not stop.is_set():
            lost = asyncio.Event()
            client: Client | None = None
            tasks: list[asyncio.Task[None]] = []
            try:
                client = await asyncio.wait_for(self._client(), self.device.connect_timeout)

                async def on_lost(exc: Exception, lost: asyncio.Event = lost) -> None:
                    log.warning("opcua %s: connection lost: %r", self.device.name, exc)
                    lost.set()

                client.connection_lost_callback = on_lost
                await asyncio.wait_for(client.connect(), self.device.connect_timeout)
                self.connects += 1
                tasks = await self._setup(client, lost)
                backoff = 0.5
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
            except (OSError, TimeoutError, ua.UaError, ConnectionError) as exc:
                READ_ERRORS.labels(**self._labels, kind="connection").inc()
                log.warning("opcua %s: %r; retrying in %.1fs", self.device.name, exc, backoff)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                if client is not None:
                    await self._disconnect(client)
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self.max_backoff)

    async def _disconnect(self, client: Client) -> None:
        try:
            await asyncio.wait_for(client.disconnect(), 2)
        except Exception:  # the server is gone: drop the socket
            with contextlib.suppress(Exception):
                client.disconnect_socket()

    async def _setup(self, client: Client, lost: asyncio.Event) -> list[asyncio.Task[None]]:
        tasks: list[asyncio.Task[None]] = []
        for group in self.device.groups:
            nodes = [client.get_node(m.node_id) for m in group.meters]
            for node, meter in zip(nodes, group.meters, strict=True):
                self._by_node[node.nodeid.to_string()] = meter
            if group.mode == "subscription":
                sub = await client.create_subscription(group.interval * 1000, _Handler(self, group))
                results = await sub.subscribe_data_change(
                    nodes, sampling_interval=group.interval * 1000
                )
                for meter, result in zip(group.meters, results, strict=True):
                    if not isinstance(result, int):  # a StatusCode: the node is not there
                        self._device_error(meter, f"cannot monitor {meter.node_id}: {result}")
            else:
                tasks.append(
                    asyncio.create_task(self._poll(client, group, nodes, lost), name=group.name)
                )
        return tasks

    async def _poll(
        self, client: Client, group: OpcUaGroup, nodes: list[Any], lost: asyncio.Event
    ) -> None:
        next_at = time.monotonic()
        while not lost.is_set():
            try:
                for i in range(0, len(nodes), _READ_CHUNK):
                    chunk = nodes[i : i + _READ_CHUNK]
                    values = await client.read_attributes(chunk)
                    for node, dv in zip(chunk, values, strict=True):
                        self._on_change(node.nodeid, dv)
                    self._flush()
            except (OSError, TimeoutError, ua.UaError, ConnectionError) as exc:
                READ_ERRORS.labels(**self._labels, kind="read").inc()
                log.warning("opcua %s: poll of %s failed: %r", self.device.name, group.name, exc)
                lost.set()
                return
            next_at += group.interval
            now = time.monotonic()
            if next_at < now:
                next_at = now + group.interval - (now - next_at) % group.interval
            await asyncio.sleep(next_at - now)

    # ---------------------------------------------------------------- values

    def _timestamp(self, dv: ua.DataValue) -> datetime:
        mode = self.device.timestamp
        ts: datetime | None = None
        if mode == "source":
            ts = dv.SourceTimestamp or dv.ServerTimestamp
        elif mode == "server":
            ts = dv.ServerTimestamp or dv.SourceTimestamp
        return truncate_ms(ts) if ts is not None else now_utc()

    def _on_change(self, nodeid: ua.NodeId, dv: ua.DataValue) -> None:
        meter = self._by_node.get(nodeid.to_string())
        if meter is None:
            return
        ts = self._timestamp(dv)
        status = dv.StatusCode
        quality = quality_of(status)
        if not self.seq.is_new(meter.meter_id, ts):
            return
        READINGS_READ.labels(**self._labels).inc()
        raw = dv.Value.Value if dv.Value is not None else None
        period_start = None
        if meter.kind == "interval":
            period_start = self.seq.period_start(
                meter.meter_id, ts, self._intervals[meter.meter_id]
            )
        row = make_row(
            meter,
            raw,
            ts,
            quality=quality,
            source=self.source,
            seq=self.seq.next(meter.meter_id),
            period_start=period_start,
        )
        if raw is None and quality == "bad":
            err = ContractError(ReasonCode.BAD_QUALITY, f"status {status} without a value", "value")
            READ_ERRORS.labels(**self._labels, kind="bad_status").inc()
            self.publisher.reject(self.device.name, self.protocol, row, err)
        else:
            try:
                row["value"] = scaled_value(meter, raw)
            except ContractError as exc:
                READ_ERRORS.labels(**self._labels, kind="bad_value").inc()
                self.publisher.reject(self.device.name, self.protocol, row, exc)
            else:
                self._pending.append(row)
        if not self._flush_scheduled:
            # one publish per notification batch: flush after asyncua delivered all of it
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        rows, self._pending = self._pending, []
        if rows:
            LAST_READ.labels(**self._labels).set(time.time())
            self.publisher.publish(self.device.name, self.protocol, rows)

    def _device_error(self, meter: MeterSpec, detail: str) -> None:
        READ_ERRORS.labels(**self._labels, kind="bad_node").inc()
        row = make_row(
            meter,
            None,
            now_utc(),
            quality="bad",
            source=self.source,
            seq=self.seq.next(meter.meter_id),
        )
        self.publisher.reject(
            self.device.name,
            self.protocol,
            row,
            ContractError(ReasonCode.DEVICE_ERROR, detail, "value"),
        )
