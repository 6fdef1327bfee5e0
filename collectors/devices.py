"""The device map: one YAML file naming every device, its endpoint and its meters.

Keys follow Telegraf's `inputs.opcua` and `inputs.modbus` where they fit (`endpoint`,
`security_policy`, `security_mode`, `certificate`, `private_key`, `auth_method`,
`username`, `password`, `connect_timeout`, `request_timeout`, `timestamp`; `controller`,
`slave_id`, `timeout`, `register`, `address`, `data_type`, `byte_order`, `scale`), so a
Telegraf user reads it without a manual. Durations are "500ms", "2s", "1m" or seconds.

```yaml
devices:
  - name: plc-1
    protocol: opcua
    endpoint: opc.tcp://10.0.0.5:4840
    security_policy: Basic256Sha256     # None | Basic256Sha256
    security_mode: SignAndEncrypt       # None | Sign | SignAndEncrypt
    certificate: certs/client.pem
    private_key: certs/client-key.pem
    auth_method: UserName               # Anonymous | UserName
    username: collector
    password: secret
    groups:
      - name: fast
        mode: subscription              # subscription | polling
        interval: 1s
        meters:
          - {meter_id: M-1, account_id: ENT-1, energy_type: electricity, unit: kWh,
             node_id: "ns=2;s=M-1.energy", counter_max: 99999.9}
  - name: gw-1
    protocol: modbus
    controller: tcp://10.0.0.6:502      # or file:///dev/ttyUSB0 (RTU: baud_rate, parity ...)
    slave_id: 1
    interval: 15s
    max_gap: 0                          # unused registers a read may span (Telegraf's fill)
    timeout: 1s
    retries: 2
    clock: {register: input, address: 0, data_type: UINT64}   # optional device clock (ms)
    meters:
      - {meter_id: M-2, account_id: ENT-1, energy_type: electricity, unit: kWh,
         register: holding, address: 100, data_type: UINT32, byte_order: CDAB, scale: 0.01}
```

`load_device_map` checks everything before a collector starts and raises
`DeviceMapError` listing every problem as `file:line: field: what is wrong`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from schemas.contracts import Kind
from schemas.errors import ContractError
from schemas.units import EnergyType, conversion_factor

__all__ = [
    "BYTE_ORDERS",
    "DATA_TYPES",
    "ClockSpec",
    "DeviceMap",
    "DeviceMapError",
    "MeterSpec",
    "ModbusDevice",
    "OpcUaDevice",
    "OpcUaGroup",
    "dump_device_map",
    "load_device_map",
    "parse_duration",
]

#: Modbus data types and their width in 16-bit registers.
DATA_TYPES: dict[str, int] = {
    "UINT16": 1,
    "INT16": 1,
    "UINT32": 2,
    "INT32": 2,
    "UINT64": 4,
    "INT64": 4,
    "FLOAT32": 2,
    "FLOAT64": 4,
}
#: Byte orders as Telegraf writes them: A is the most significant byte. Two-letter and
#: eight-letter spellings name the same orders for 16- and 64-bit values.
BYTE_ORDERS: dict[str, str] = {
    "ABCD": "ABCD",  # big-endian: Modbus' own order
    "CDAB": "CDAB",  # words swapped (low word first)
    "BADC": "BADC",  # bytes swapped in each word
    "DCBA": "DCBA",  # little-endian
    "AB": "ABCD",
    "BA": "BADC",
    "ABCDEFGH": "ABCD",
    "GHEFCDAB": "CDAB",
    "BADCFEHG": "BADC",
    "HGFEDCBA": "DCBA",
}
SECURITY_POLICIES = ("None", "Basic256Sha256")
SECURITY_MODES = ("None", "Sign", "SignAndEncrypt")
AUTH_METHODS = ("Anonymous", "UserName")
TIMESTAMPS = ("source", "server", "gather")  # as Telegraf: which time becomes `ts`
GROUP_MODES = ("subscription", "polling")
REGISTERS = ("holding", "input")
PARITIES = ("N", "E", "O")


class DeviceMapError(ValueError):
    """A device map that cannot be used; `problems` are `file:line: field: message` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("device map is not valid:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class MeterSpec:
    """One meter: what it measures and where to read it."""

    meter_id: str
    account_id: str
    energy_type: str
    unit: str
    kind: str = "cumulative"
    scale: float = 1.0
    offset: float = 0.0
    counter_max: float | None = None
    node_id: str = ""  # OPC-UA
    register: str = "holding"  # Modbus
    address: int = 0
    data_type: str = "UINT16"
    byte_order: str = "ABCD"
    slave_id: int = 1
    line: int = 0

    @property
    def width(self) -> int:
        """Modbus registers the value spans."""
        return DATA_TYPES[self.data_type]


@dataclass(frozen=True)
class OpcUaGroup:
    """Meters read the same way: by subscription (publishing interval) or by polling."""

    name: str
    mode: str
    interval: float
    meters: tuple[MeterSpec, ...]


@dataclass(frozen=True)
class OpcUaDevice:
    """An OPC-UA server and its groups of meters."""

    name: str
    endpoint: str
    groups: tuple[OpcUaGroup, ...]
    security_policy: str = "None"
    security_mode: str = "None"
    certificate: str = ""
    private_key: str = ""
    server_certificate: str = ""
    auth_method: str = "Anonymous"
    username: str = ""
    password: str = field(default="", repr=False)
    connect_timeout: float = 10.0
    request_timeout: float = 5.0
    reconnect_max_delay: float = 30.0  # the reconnect backoff doubles from 0.5 s up to this
    timestamp: str = "source"
    protocol: str = "opcua"

    @property
    def meters(self) -> tuple[MeterSpec, ...]:
        """Every meter of every group."""
        return tuple(m for g in self.groups for m in g.meters)


@dataclass(frozen=True)
class ClockSpec:
    """A device register holding the device's clock as Unix milliseconds (UTC)."""

    register: str = "input"
    address: int = 0
    data_type: str = "UINT64"
    byte_order: str = "ABCD"
    slave_id: int = 1


@dataclass(frozen=True)
class ModbusDevice:
    """A Modbus TCP device (or RTU line) polled every `interval`."""

    name: str
    controller: str
    meters: tuple[MeterSpec, ...]
    transmission_mode: str = "TCP"  # TCP | RTU
    slave_id: int = 1
    interval: float = 15.0
    timeout: float = 1.0
    retries: int = 1
    max_batch: int = 125  # registers per read (the protocol's limit)
    max_gap: int = 0  # unused registers a read may span to join neighbours (all must exist)
    baud_rate: int = 9600
    data_bits: int = 8
    parity: str = "N"
    stop_bits: int = 1
    clock: ClockSpec | None = None
    protocol: str = "modbus"

    @property
    def host_port(self) -> tuple[str, int]:
        """Host and port of a tcp:// controller."""
        url = urlparse(self.controller)
        return url.hostname or "127.0.0.1", url.port or 502

    @property
    def serial_port(self) -> str:
        """The device path of a file:// controller."""
        return urlparse(self.controller).path


Device = OpcUaDevice | ModbusDevice


@dataclass(frozen=True)
class DeviceMap:
    """Every device of one file."""

    path: str
    devices: tuple[Device, ...]

    @property
    def meters(self) -> tuple[MeterSpec, ...]:
        """Every meter of every device."""
        return tuple(m for d in self.devices for m in d.meters)


# ------------------------------------------------------------------ YAML with lines


class _Map(dict[str, Any]):
    line: int = 0
    lines: dict[str, int]


class _Seq(list[Any]):
    line: int = 0
    lines: list[int]


class _Loader(yaml.SafeLoader):
    duplicates: list[tuple[int, str]]


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            loader.duplicates.append((key_node.start_mark.line + 1, str(key)))
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from "250ms", "2s", "1.5m", "1h" or a number of seconds; ValueError if not."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(value)
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not seconds > 0:
        raise ValueError(value)
    return seconds


class _Checker:
    """Reads fields of one mapping, recording problems with file, line and field path."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        self.meter_lines: dict[str, int] = {}  # meter_id -> line it was first seen

    def problem(self, line: int, where: str, message: str) -> None:
        self.problems.append(f"{self.path}:{line}: {where}: {message}")

    def get(
        self,
        obj: _Map,
        key: str,
        where: str,
        kind: str,
        default: Any = ...,
        choices: tuple[str, ...] | None = None,
    ) -> Any:
        """Field `key` of `obj` converted to `kind` (str, int, float, duration, choice)."""
        line = obj.lines.get(key, obj.line)
        name = f"{where}.{key}" if where else key
        if key not in obj or obj[key] is None:
            if default is ...:
                self.problem(obj.line, name, "is required")
                return None
            return default
        raw = obj[key]
        try:
            if kind == "str":
                if not isinstance(raw, str | int) or isinstance(raw, bool) or str(raw) == "":
                    raise ValueError
                value: Any = str(raw)
            elif kind == "int":
                if isinstance(raw, bool) or not isinstance(raw, int):
                    raise ValueError
                value = raw
            elif kind == "float":
                if isinstance(raw, bool) or not isinstance(raw, int | float):
                    raise ValueError
                value = float(raw)
            elif kind == "duration":
                value = parse_duration(raw)
            else:
                raise AssertionError(kind)
        except ValueError:
            self.problem(line, name, f"{raw!r} is not a valid {kind}")
            return None
        if choices is not None:
            folded = {c.lower(): c for c in choices}
            if str(value).lower() not in folded:
                self.problem(line, name, f"{raw!r} is not one of {', '.join(choices)}")
                return None
            value = folded[str(value).lower()]
        return value

    def unknown(self, obj: _Map, known: set[str], where: str) -> None:
        """Report keys not in `known` (typos must not pass silently)."""
        for key in obj:
            if key not in known:
                self.problem(obj.lines[key], f"{where}.{key}", "unknown field")

    def mapping(self, obj: Any, line: int, where: str) -> bool:
        if not isinstance(obj, _Map):
            self.problem(getattr(obj, "line", line), where, "must be a mapping")
            return False
        return True

    def sequence(self, obj: _Map, key: str, where: str) -> _Seq | None:
        raw = obj.get(key)
        if not isinstance(raw, _Seq) or not raw:
            name = f"{where}.{key}" if where else key
            self.problem(obj.lines.get(key, obj.line), name, "must be a non-empty list")
            return None
        return raw


_METER_KEYS = {
    "meter_id",
    "account_id",
    "energy_type",
    "unit",
    "kind",
    "scale",
    "offset",
    "counter_max",
}
_OPCUA_METER_KEYS = _METER_KEYS | {"node_id"}
_MODBUS_METER_KEYS = _METER_KEYS | {"register", "address", "data_type", "byte_order", "slave_id"}


def _meter(c: _Checker, obj: _Map, where: str, protocol: str, slave_id: int) -> MeterSpec | None:
    keys = _OPCUA_METER_KEYS if protocol == "opcua" else _MODBUS_METER_KEYS
    c.unknown(obj, keys, where)
    n = len(c.problems)
    common: dict[str, Any] = {
        "meter_id": c.get(obj, "meter_id", where, "str"),
        "account_id": c.get(obj, "account_id", where, "str"),
        "energy_type": c.get(obj, "energy_type", where, "str", choices=tuple(EnergyType)),
        "unit": c.get(obj, "unit", where, "str"),
        "kind": c.get(obj, "kind", where, "str", "cumulative", tuple(Kind)),
        "scale": c.get(obj, "scale", where, "float", 1.0),
        "offset": c.get(obj, "offset", where, "float", 0.0),
        "counter_max": c.get(obj, "counter_max", where, "float", None),
        "line": obj.line,
    }
    meter_id = common["meter_id"]
    if meter_id in c.meter_lines:
        c.problem(
            obj.lines["meter_id"],
            f"{where}.meter_id",
            f"{meter_id!r} already used on line {c.meter_lines[meter_id]}",
        )
    elif meter_id:
        c.meter_lines[meter_id] = obj.lines["meter_id"]
    if common["energy_type"] and common["unit"]:
        try:
            conversion_factor(common["energy_type"], common["unit"])
        except ContractError as exc:
            c.problem(obj.lines.get("unit", obj.line), f"{where}.unit", exc.detail)
    cmax = common["counter_max"]
    if cmax is not None and not cmax > 0:
        c.problem(obj.lines["counter_max"], f"{where}.counter_max", "must be > 0")
    if protocol == "opcua":
        node_id = c.get(obj, "node_id", where, "str")
        if node_id and not re.match(r"^(ns=\d+;)?[isgb]=.+$", node_id):
            c.problem(
                obj.lines["node_id"], f"{where}.node_id", f"{node_id!r} is not like 'ns=2;s=Name'"
            )
        spec = dict(common, node_id=node_id)
    else:
        data_type = c.get(obj, "data_type", where, "str", "UINT16", tuple(DATA_TYPES))
        byte_order = c.get(obj, "byte_order", where, "str", "ABCD", tuple(BYTE_ORDERS))
        address = c.get(obj, "address", where, "int")
        if address is not None and not 0 <= address <= 65535:
            c.problem(obj.lines["address"], f"{where}.address", "must be 0..65535")
        spec = dict(
            common,
            register=c.get(obj, "register", where, "str", "holding", REGISTERS),
            address=address,
            data_type=data_type,
            byte_order=BYTE_ORDERS.get(byte_order or "ABCD", "ABCD"),
            slave_id=c.get(obj, "slave_id", where, "int", slave_id),
        )
        # a cumulative integer counter rolls over at the register width times the scale
        if (
            len(c.problems) == n
            and spec["kind"] == "cumulative"
            and cmax is None
            and not data_type.startswith("FLOAT")
        ):
            bits = 16 * DATA_TYPES[data_type] - (0 if data_type.startswith("U") else 1)
            spec["counter_max"] = (2**bits) * abs(spec["scale"])
    if len(c.problems) > n:
        return None
    return MeterSpec(**spec)


_OPCUA_KEYS = {
    "name",
    "protocol",
    "endpoint",
    "security_policy",
    "security_mode",
    "certificate",
    "private_key",
    "server_certificate",
    "auth_method",
    "username",
    "password",
    "connect_timeout",
    "request_timeout",
    "reconnect_max_delay",
    "timestamp",
    "groups",
}


def _opcua(c: _Checker, obj: _Map, where: str, base: Path) -> OpcUaDevice | None:
    c.unknown(obj, _OPCUA_KEYS, where)
    n = len(c.problems)
    endpoint = c.get(obj, "endpoint", where, "str")
    if endpoint and not endpoint.startswith("opc.tcp://"):
        c.problem(obj.lines["endpoint"], f"{where}.endpoint", "must start with opc.tcp://")
    policy = c.get(obj, "security_policy", where, "str", "None", SECURITY_POLICIES)
    mode = c.get(obj, "security_mode", where, "str", "None", SECURITY_MODES)
    files: dict[str, str] = {}
    for key in ("certificate", "private_key", "server_certificate"):
        value = c.get(obj, key, where, "str", "")
        if value:
            path = Path(value) if Path(value).is_absolute() else base / value
            if not path.is_file():
                c.problem(obj.lines[key], f"{where}.{key}", f"file {path} does not exist")
            value = str(path)
        files[key] = value
    if policy and mode and (policy == "None") != (mode == "None"):
        c.problem(obj.line, f"{where}.security_mode", "policy and mode must both be None or not")
    if policy and policy != "None" and not (files["certificate"] and files["private_key"]):
        c.problem(obj.line, where, f"security_policy {policy} needs certificate and private_key")
    auth = c.get(obj, "auth_method", where, "str", "Anonymous", AUTH_METHODS)
    username = c.get(obj, "username", where, "str", "")
    password = c.get(obj, "password", where, "str", "")
    if auth == "UserName" and not username:
        c.problem(obj.line, f"{where}.username", "is required for auth_method UserName")
    groups: list[OpcUaGroup] = []
    raw_groups = c.sequence(obj, "groups", where)
    for gi, graw in enumerate(raw_groups or []):
        gwhere = f"{where}.groups[{gi}]"
        if not c.mapping(graw, raw_groups.lines[gi], gwhere):
            continue
        c.unknown(graw, {"name", "mode", "interval", "meters"}, gwhere)
        meters = [
            _meter(c, m, f"{gwhere}.meters[{mi}]", "opcua", 1)
            for mi, m in enumerate(c.sequence(graw, "meters", gwhere) or [])
            if c.mapping(m, graw.line, f"{gwhere}.meters[{mi}]")
        ]
        groups.append(
            OpcUaGroup(
                name=c.get(graw, "name", gwhere, "str", f"group{gi}"),
                mode=c.get(graw, "mode", gwhere, "str", "subscription", GROUP_MODES),
                interval=c.get(graw, "interval", gwhere, "duration", 15.0),
                meters=tuple(m for m in meters if m is not None),
            )
        )
    device = dict(
        name=c.get(obj, "name", where, "str"),
        endpoint=endpoint,
        groups=tuple(groups),
        security_policy=policy,
        security_mode=mode,
        auth_method=auth,
        username=username,
        password=password,
        connect_timeout=c.get(obj, "connect_timeout", where, "duration", 10.0),
        request_timeout=c.get(obj, "request_timeout", where, "duration", 5.0),
        reconnect_max_delay=c.get(obj, "reconnect_max_delay", where, "duration", 30.0),
        timestamp=c.get(obj, "timestamp", where, "str", "source", TIMESTAMPS),
        **files,
    )
    if len(c.problems) > n:
        return None
    return OpcUaDevice(**device)


_MODBUS_KEYS = {
    "name",
    "protocol",
    "controller",
    "transmission_mode",
    "slave_id",
    "interval",
    "timeout",
    "retries",
    "max_batch",
    "max_gap",
    "baud_rate",
    "data_bits",
    "parity",
    "stop_bits",
    "clock",
    "meters",
}


def _modbus(c: _Checker, obj: _Map, where: str) -> ModbusDevice | None:
    c.unknown(obj, _MODBUS_KEYS, where)
    n = len(c.problems)
    controller = c.get(obj, "controller", where, "str")
    scheme = urlparse(controller).scheme if controller else ""
    if controller and scheme not in ("tcp", "file"):
        c.problem(
            obj.lines["controller"],
            f"{where}.controller",
            "must be tcp://host:port or file:///dev/ttyX",
        )
    mode = c.get(obj, "transmission_mode", where, "str", "RTU" if scheme == "file" else "TCP")
    if mode and mode.upper() not in ("TCP", "RTU"):
        c.problem(obj.lines["transmission_mode"], f"{where}.transmission_mode", "TCP or RTU")
    slave_id = c.get(obj, "slave_id", where, "int", 1)
    max_batch = c.get(obj, "max_batch", where, "int", 125)
    if max_batch is not None and not 1 <= max_batch <= 125:
        c.problem(obj.lines["max_batch"], f"{where}.max_batch", "must be 1..125")
    max_gap = c.get(obj, "max_gap", where, "int", 0)
    if max_gap is not None and not 0 <= max_gap <= 124:
        c.problem(obj.lines["max_gap"], f"{where}.max_gap", "must be 0..124")
    clock = None
    if "clock" in obj and c.mapping(obj["clock"], obj.lines["clock"], f"{where}.clock"):
        craw = obj["clock"]
        cw = f"{where}.clock"
        c.unknown(craw, {"register", "address", "data_type", "byte_order", "slave_id"}, cw)
        clock = ClockSpec(
            register=c.get(craw, "register", cw, "str", "input", REGISTERS),
            address=c.get(craw, "address", cw, "int", 0),
            data_type=c.get(craw, "data_type", cw, "str", "UINT64", ("UINT64", "INT64")),
            byte_order=BYTE_ORDERS.get(
                c.get(craw, "byte_order", cw, "str", "ABCD", tuple(BYTE_ORDERS)) or "", "ABCD"
            ),
            slave_id=c.get(craw, "slave_id", cw, "int", slave_id or 1),
        )
    meters = [
        _meter(c, m, f"{where}.meters[{mi}]", "modbus", slave_id or 1)
        for mi, m in enumerate(c.sequence(obj, "meters", where) or [])
        if c.mapping(m, obj.line, f"{where}.meters[{mi}]")
    ]
    device = dict(
        name=c.get(obj, "name", where, "str"),
        controller=controller,
        meters=tuple(m for m in meters if m is not None),
        transmission_mode=(mode or "TCP").upper(),
        slave_id=slave_id,
        interval=c.get(obj, "interval", where, "duration", 15.0),
        timeout=c.get(obj, "timeout", where, "duration", 1.0),
        retries=c.get(obj, "retries", where, "int", 1),
        max_batch=max_batch,
        max_gap=max_gap,
        baud_rate=c.get(obj, "baud_rate", where, "int", 9600),
        data_bits=c.get(obj, "data_bits", where, "int", 8),
        parity=c.get(obj, "parity", where, "str", "N", PARITIES),
        stop_bits=c.get(obj, "stop_bits", where, "int", 1),
        clock=clock,
    )
    if len(c.problems) > n:
        return None
    return ModbusDevice(**device)


def load_device_map(path: str | Path) -> DeviceMap:
    """Load and check a device map; raise DeviceMapError naming file, line and field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DeviceMapError([f"{path}: cannot read: {exc.strerror}"]) from None
    loader = _Loader(text)
    loader.duplicates = []
    try:
        doc = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise DeviceMapError([f"{path}:{line}: not valid YAML: {exc}"]) from None
    finally:
        loader.dispose()
    problems: list[str] = [f"{path}:{ln}: {key}: duplicate key" for ln, key in loader.duplicates]
    c = _Checker(str(path), problems)
    if not isinstance(doc, _Map):
        raise DeviceMapError([f"{path}:1: the file must be a mapping with a 'devices' list"])
    c.unknown(doc, {"devices"}, "")
    devices: list[Device] = []
    for i, raw in enumerate(c.sequence(doc, "devices", "") or []):
        where = f"devices[{i}]"
        if not c.mapping(raw, doc.line, where):
            continue
        protocol = c.get(raw, "protocol", where, "str", choices=("opcua", "modbus"))
        if protocol == "opcua":
            device: Device | None = _opcua(c, raw, where, path.parent)
        elif protocol == "modbus":
            device = _modbus(c, raw, where)
        else:
            continue
        if device is not None:
            devices.append(device)
    _check_unique(c, doc, devices)
    if problems:
        raise DeviceMapError(problems)
    return DeviceMap(str(path), tuple(devices))


def _check_unique(c: _Checker, doc: _Map, devices: list[Device]) -> None:
    names: set[str] = set()
    for device in devices:
        if device.name in names:
            c.problem(doc.line, "devices", f"device name {device.name!r} is used twice")
        names.add(device.name)


def dump_device_map(devices: list[dict[str, Any]], path: str | Path) -> None:
    """Write a device map (plain dicts as in the file format) as YAML."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"devices": devices}, sort_keys=False, width=120)
    Path(path).write_text("# written by carbon-accounts simulate\n" + text)
