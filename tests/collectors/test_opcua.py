"""The OPC-UA collector against a real asyncua server on 127.0.0.1: subscription and polling,
SourceTimestamp and StatusCode, garbage to the DLQ, server restart, and Basic256Sha256
SignAndEncrypt with certificates made here plus user name and password."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import itertools
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from collectors.devices import load_device_map
from collectors.metrics import READ_ERRORS
from collectors.opcua import APPLICATION_URI, quality_of
from collectors.runner import Collectors
from infra.broker import free_port
from schemas.settings import Settings
from tests.collectors.conftest import consume

NS_URI = "urn:carbon-accounts:test"


class MeterServer:
    """An asyncua server with counters `M-<i>.energy` a writer bumps every `tick` seconds.

    Every value written is remembered with its SourceTimestamp (to the ms), so a test can
    check that each reading carries exactly the (ts, value) pair the device had.
    """

    def __init__(
        self,
        port: int,
        meters: int,
        *,
        secure: tuple[Path, Path] | None = None,
        users: dict[str, str] | None = None,
        tick: float = 0.1,
    ) -> None:
        self.port = port
        self.meters = meters
        self.secure = secure
        self.users = users
        self.tick = tick
        self.written: dict[tuple[str, dt.datetime], float] = {}
        self.counter = itertools.count(1)
        self.status: dict[str, ua.StatusCode] = {}
        self.raw: dict[str, Any] = {}  # meter -> a garbage value to serve instead
        self.server: Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/test/"

    async def start(self) -> None:
        manager = None
        if self.users is not None:
            users = self.users

            class Manager:
                def get_user(
                    self,
                    iserver: Any,
                    username: str | None = None,
                    password: str | None = None,
                    certificate: Any = None,
                ) -> User | None:
                    if username and users.get(username) == password:
                        return User(role=UserRole.User)
                    return None

            manager = Manager()
        server = Server(user_manager=manager)
        await server.init()
        server.set_endpoint(self.endpoint)
        if self.secure:
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            await server.load_certificate(str(self.secure[0]))
            await server.load_private_key(str(self.secure[1]))
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace(NS_URI)
        self.ns = ns
        self.nodes = {}
        for i in range(self.meters):
            garbage = isinstance(self.raw.get(f"M-{i}"), str)
            node = await server.nodes.objects.add_variable(
                ua.NodeId(f"M-{i}.energy", ns),
                f"M-{i}",
                "" if garbage else 0.0,
                ua.VariantType.String if garbage else ua.VariantType.Double,
            )
            self.nodes[f"M-{i}"] = node.nodeid
        await server.start()
        self.server = server
        await self.write()
        self._task = asyncio.create_task(self._run())

    async def write(self) -> None:
        assert self.server is not None
        k = next(self.counter)
        now = dt.datetime.now(dt.UTC)
        ts = now.replace(microsecond=now.microsecond // 1000 * 1000)
        for meter, nodeid in self.nodes.items():
            value = self.raw.get(meter, k * 1.5)
            status = self.status.get(meter, ua.StatusCode(ua.StatusCodes.Good))
            variant = ua.Variant(value) if value is not None else ua.Variant()
            await self.server.write_attribute_value(
                nodeid, ua.DataValue(variant, StatusCode=status, SourceTimestamp=ts)
            )
            self.written[(meter, ts)] = value

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            await self.write()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.server is not None:
            await self.server.stop()
            self.server = None


def _device(
    name: str, endpoint: str, groups: dict[str, list[str]], interval: str = "200ms", extra: str = ""
) -> str:
    lines = [
        f"  - name: {name}",
        "    protocol: opcua",
        f"    endpoint: {endpoint}",
        extra,
        "    groups:",
    ]
    for mode, meters in groups.items():
        lines += [f"      - {{name: {mode}, mode: {mode}, interval: {interval}, meters: ["]
        lines += [
            f"          {{meter_id: {name}-{m}, account_id: ENT-{name}, energy_type: electricity,"
            f" unit: kWh, node_id: 'ns=2;s={m}.energy'}},"
            for m in meters
        ]
        lines += ["        ]}"]
    return "\n".join(line for line in lines if line)


async def _collect(
    path: Path, tmp_path: Path, bootstrap: str, topic: str, seconds: float, during: Any = None
) -> Collectors:
    settings = Settings(data_dir=str(tmp_path / "var"))
    stop = asyncio.Event()
    async with Collectors(load_device_map(path), settings, bootstrap, topic=topic) as c:
        runner = asyncio.create_task(c.run(stop))
        if during is not None:
            await during()
        await asyncio.sleep(seconds)
        stop.set()
        await runner
    return c


def test_status_codes_map_to_quality() -> None:
    assert quality_of(ua.StatusCode(ua.StatusCodes.Good)) == "good"
    assert quality_of(ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)) == "uncertain"
    assert quality_of(ua.StatusCode(ua.StatusCodes.BadSensorFailure)) == "bad"
    assert quality_of(None) == "good"


async def test_subscription_and_polling(bootstrap: str, topic: str, tmp_path: Path) -> None:
    server = MeterServer(free_port(), 6)
    server.status["M-1"] = ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)
    server.raw["M-4"] = "garbage"  # not a number
    server.status["M-5"] = ua.StatusCode(ua.StatusCodes.BadSensorFailure)
    server.raw["M-5"] = None  # Bad, and no value at all
    await server.start()
    path = tmp_path / "devices.yaml"
    path.write_text(
        "devices:\n"
        + _device(
            "plc",
            server.endpoint,
            {"subscription": ["M-0", "M-1", "M-4"], "polling": ["M-2", "M-3", "M-5"]},
        )
    )
    try:
        await _collect(path, tmp_path, bootstrap, topic, 2.0)
    finally:
        await server.stop()
    got = await consume(bootstrap, topic)
    by_meter: dict[str, list[Any]] = {}
    for r in got.readings:
        by_meter.setdefault(r.meter_id, []).append(r)
    assert set(by_meter) == {"plc-M-0", "plc-M-1", "plc-M-2", "plc-M-3"}
    for meter_id, readings in by_meter.items():
        # up to 2 s (less the connect) of a value every 100 ms, sampled or read every 200 ms
        assert 3 <= len(readings) <= 21, (meter_id, len(readings))
        for r in readings:  # ts is the SourceTimestamp the value was written with
            assert server.written[(meter_id.removeprefix("plc-"), r.ts)] == r.value
        seqs = [r.seq for r in readings]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert len({r.ts for r in readings}) == len(readings)  # each device value once
    assert {r.quality for r in by_meter["plc-M-1"]} == {"uncertain"}
    assert {r.quality for r in by_meter["plc-M-0"]} == {"good"}
    assert by_meter["plc-M-0"][0].source == "opcua://plc"
    reasons = {dict(m.headers)["reason"] for m in got.dlq}
    assert reasons == {b"wrong_type", b"bad_quality"}


async def test_server_restart_resubscribes_without_gaps(
    bootstrap: str, topic: str, tmp_path: Path
) -> None:
    server = MeterServer(free_port(), 2)
    await server.start()
    path = tmp_path / "devices.yaml"
    path.write_text(
        "devices:\n"
        + _device(
            "plc",
            server.endpoint,
            {"subscription": ["M-0"], "polling": ["M-1"]},
            extra="    reconnect_max_delay: 1s",
        )
    )
    outage: list[dt.datetime] = []

    async def restart() -> None:
        await asyncio.sleep(1.0)
        outage.append(dt.datetime.now(dt.UTC))
        await server.stop()
        await asyncio.sleep(1.0)
        await server.start()  # the same port and nodes, as a PLC coming back
        outage.append(dt.datetime.now(dt.UTC))

    try:
        c = await _collect(path, tmp_path, bootstrap, topic, 2.0, during=restart)
    finally:
        await server.stop()
    assert c.collectors[0].connects == 2
    got = await consume(bootstrap, topic)
    down = (outage[1] - outage[0]).total_seconds()
    for meter in ("M-0", "M-1"):
        ts = sorted(r.ts for r in got.readings if r.meter_id == f"plc-{meter}")
        assert ts[0] < outage[0] and ts[-1] > outage[1] + dt.timedelta(seconds=1)
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ts)]
        # one gap: the outage, plus at most one reconnect backoff (<= 1 s + 20 % jitter)
        # and a sampling interval
        assert max(gaps) <= down + 1.2 + 0.3, (meter, down, max(gaps))
        assert sorted(gaps)[-2] < 1.0, gaps  # elsewhere a value every 100-200 ms


def _certificate(directory: Path, name: str, uri: str) -> tuple[Path, Path]:
    """A self-signed certificate for an OPC-UA application (SAN: its URI and 127.0.0.1)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(uri),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_basic256sha256_sign_and_encrypt_with_user_and_password(
    bootstrap: str, topic: str, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    server_cert = _certificate(certs, "server", "urn:freeopcua:python:server")
    _certificate(certs, "collector", APPLICATION_URI)
    server = MeterServer(free_port(), 1, secure=server_cert, users={"meter-reader": "s3cret"})
    await server.start()
    security = (
        "    security_policy: Basic256Sha256\n    security_mode: SignAndEncrypt\n"
        "    certificate: certs/collector.pem\n    private_key: certs/collector-key.pem\n"
        "    server_certificate: certs/server.pem\n    auth_method: UserName\n"
    )
    path = tmp_path / "devices.yaml"
    path.write_text(
        "devices:\n"
        + _device(
            "good",
            server.endpoint,
            {"polling": ["M-0"]},
            extra=security + "    username: meter-reader\n    password: s3cret",
        )
        + "\n"
        + _device(
            "intruder",
            server.endpoint,
            {"polling": ["M-0"]},
            extra=security + "    username: meter-reader\n    password: guess",
        )
    )
    refused = READ_ERRORS.labels(device="intruder", protocol="opcua", kind="connection")
    before = refused._value.get()
    try:
        c = await _collect(path, tmp_path, bootstrap, topic, 1.5)
    finally:
        await server.stop()
    good, intruder = c.collectors
    assert good.connects == 1 and intruder.connects == 0
    assert refused._value.get() > before
    got = await consume(bootstrap, topic)
    readings = [r for r in got.readings if r.meter_id == "good-M-0"]
    assert len(readings) >= 4
    assert all(server.written[("M-0", r.ts)] == r.value for r in readings)
    assert not any(r.meter_id.startswith("intruder") for r in got.readings)


@pytest.mark.parametrize("mode", ["Sign", "None"])
def test_security_policy_and_mode_go_together(tmp_path: Path, mode: str) -> None:
    (tmp_path / "c.pem").write_text("x")
    path = tmp_path / "d.yaml"
    path.write_text(
        "devices:\n"
        + _device(
            "p",
            "opc.tcp://127.0.0.1:1",
            {"polling": ["M-0"]},
            extra=f"    security_policy: Basic256Sha256\n    security_mode: {mode}\n"
            "    certificate: c.pem\n    private_key: c.pem",
        )
    )
    if mode == "None":
        with pytest.raises(ValueError, match="security_mode: policy and mode"):
            load_device_map(path)
    else:
        assert load_device_map(path).devices[0].security_mode == "Sign"  # type: ignore[union-attr]
