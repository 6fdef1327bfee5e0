"""The device map: loading, derived counter_max, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.devices import (
    DeviceMapError,
    ModbusDevice,
    OpcUaDevice,
    load_device_map,
    parse_duration,
)

GOOD = """\
devices:
  - name: plc-1
    protocol: opcua
    endpoint: opc.tcp://127.0.0.1:4840
    timestamp: Source
    groups:
      - name: fast
        mode: subscription
        interval: 500ms
        meters:
          - {meter_id: M-1, account_id: ENT-1, energy_type: electricity, unit: kWh,
             node_id: "ns=2;s=M-1.energy", counter_max: 99999.9}
      - name: slow
        mode: polling
        interval: 1m
        meters:
          - {meter_id: M-2, account_id: ENT-1, energy_type: steam, unit: GJ, node_id: "i=2258"}
  - name: gw-1
    protocol: modbus
    controller: tcp://127.0.0.1:5020
    slave_id: 3
    interval: 2s
    timeout: 250ms
    clock: {register: input, address: 0}
    meters:
      - {meter_id: M-3, account_id: ENT-2, energy_type: electricity, unit: kWh,
         address: 100, data_type: uint32, byte_order: cdab, scale: 0.01}
      - {meter_id: M-4, account_id: ENT-2, energy_type: natural_gas, unit: Nm3,
         register: input, address: 104, data_type: FLOAT32}
      - {meter_id: M-5, account_id: ENT-2, energy_type: electricity, unit: kWh,
         address: 110, data_type: INT16, slave_id: 4}
      - {meter_id: M-6, account_id: ENT-2, energy_type: electricity, unit: MWh,
         address: 120, data_type: UINT64, byte_order: GHEFCDAB, scale: 0.5}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devices.yaml"
    path.write_text(text)
    return path


def test_a_good_map_loads_with_defaults_and_conventions(tmp_path: Path) -> None:
    dm = load_device_map(_write(tmp_path, GOOD))
    opc, gw = dm.devices
    assert isinstance(opc, OpcUaDevice) and isinstance(gw, ModbusDevice)
    assert opc.timestamp == "source"  # choices fold case, as Telegraf users write them
    assert [(g.mode, g.interval) for g in opc.groups] == [("subscription", 0.5), ("polling", 60.0)]
    assert opc.groups[0].meters[0].counter_max == 99999.9
    assert gw.host_port == ("127.0.0.1", 5020) and gw.interval == 2.0 and gw.timeout == 0.25
    assert gw.clock is not None and gw.clock.register == "input" and gw.clock.slave_id == 3
    m3, m4, m5, m6 = gw.meters
    assert (m3.data_type, m3.byte_order, m3.slave_id, m3.register) == (
        "UINT32",
        "CDAB",
        3,
        "holding",
    )
    assert m5.slave_id == 4
    assert m6.byte_order == "CDAB"  # the 64-bit spelling of a word swap
    # counter_max = 2^bits x scale: computed by hand
    assert m3.counter_max == pytest.approx(4294967296 * 0.01)  # 42,949,672.96 kWh
    assert m4.counter_max is None  # a float register has no wrap
    assert m5.counter_max == 32768.0  # int16: 2^15
    assert m6.counter_max == pytest.approx(18446744073709551616 * 0.5)
    assert len(dm.meters) == 6


BAD = """\
devices:
  - name: gw-1
    protocol: modbus
    controller: tcp://127.0.0.1:5020
    meters:
      - meter_id: M-1
        account_id: ENT-1
        energy_type: electricity
        unit: kWh
        address: 100
        data_type: FLOAT16
      - meter_id: M-2
        energy_type: electricity
        unit: litres
        address: 70000
        scael: 0.1
      - {meter_id: M-1, account_id: ENT-1, energy_type: electricity, unit: kWh, address: 1}
  - name: plc
    protocol: opcua
    endpoint: http://x
    security_policy: Basic256Sha256
    security_mode: SignAndEncrypt
    certificate: missing.pem
    groups:
      - meters:
          - {meter_id: M-9, account_id: E, energy_type: coal, unit: t, node_id: "nonsense"}
"""


def test_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, BAD)
    with pytest.raises(DeviceMapError) as info:
        load_device_map(path)
    problems = info.value.problems
    text = "\n".join(problems)

    def has(line: int, field: str, words: str) -> bool:
        prefix = f"{path}:{line}: {field}"
        return any(p.startswith(prefix) and words in p for p in problems)

    # line numbers read off BAD above (1-based)
    assert has(11, "devices[0].meters[0].data_type", "FLOAT16"), text
    assert has(12, "devices[0].meters[1].account_id", "required"), text
    assert has(14, "devices[0].meters[1].unit", "litres"), text
    assert has(15, "devices[0].meters[1].address", "0..65535"), text
    assert has(16, "devices[0].meters[1].scael", "unknown field"), text
    assert has(17, "devices[0].meters[2].meter_id", "'M-1' already used on line 6"), text
    assert has(20, "devices[1].endpoint", "opc.tcp://"), text
    assert has(23, "devices[1].certificate", "does not exist"), text
    assert has(18, "devices[1]", "needs certificate and private_key"), text
    assert has(26, "devices[1].groups[0].meters[0].energy_type", "coal"), text
    assert has(26, "devices[1].groups[0].meters[0].node_id", "nonsense"), text


def test_yaml_syntax_errors_and_missing_files_say_where(tmp_path: Path) -> None:
    path = _write(tmp_path, "devices:\n  - name: a\n    protocol: [modbus\n")
    with pytest.raises(DeviceMapError, match=rf"{path}:\d+: not valid YAML"):
        load_device_map(path)
    with pytest.raises(DeviceMapError, match="cannot read"):
        load_device_map(tmp_path / "nope.yaml")
    path = _write(tmp_path, "devices: []\n")
    with pytest.raises(DeviceMapError, match=rf"{path}:1: devices: must be a non-empty list"):
        load_device_map(path)
    path = _write(tmp_path, "devices:\n  - {name: a, protocol: mqtt}\n")
    with pytest.raises(DeviceMapError, match=r":2: devices\[0\].protocol: 'mqtt' is not one of"):
        load_device_map(path)


def test_durations() -> None:
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2s") == 2.0
    assert parse_duration("1.5m") == 90.0
    assert parse_duration("1h") == 3600.0
    assert parse_duration(3) == 3.0
    for bad in ("0s", "-1s", "soon", True, "5 days"):
        with pytest.raises(ValueError):
            parse_duration(bad)
