"""The `collect` and `simulate` commands: a bad device map stops collect with where the error
is; simulate writes a device map that loads and matches what it serves."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from collectors.devices import load_device_map
from streams.cli import cli


def test_collect_refuses_a_bad_device_map_and_says_where(tmp_path: Path) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(
        "devices:\n  - name: gw\n    protocol: modbus\n    controller: tcp://127.0.0.1:1\n"
        "    meters:\n      - {meter_id: M, account_id: E, energy_type: electricity,"
        " unit: kWh, address: 1, data_type: UINT24}\n"
    )
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    result = CliRunner().invoke(cli, ["collect", "--devices", str(path)], env=env)
    assert result.exit_code == 1
    assert f"{path}:6: devices[0].meters[0].data_type: 'UINT24'" in result.output


def test_collect_needs_a_kafka(tmp_path: Path) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(
        "devices:\n  - name: gw\n    protocol: modbus\n    controller: tcp://127.0.0.1:1\n"
        "    meters:\n      - {meter_id: M, account_id: E, energy_type: electricity,"
        " unit: kWh, address: 1}\n"
    )
    result = CliRunner().invoke(
        cli, ["collect", "--devices", str(path)], env={"KAFKA_BOOTSTRAP_SERVERS": ""}
    )
    assert result.exit_code == 2 and "KAFKA_BOOTSTRAP_SERVERS" in result.output


def test_simulate_writes_a_matching_device_map(tmp_path: Path) -> None:
    path = tmp_path / "devices.yaml"
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--meters",
            "12",
            "--speed",
            "900",
            "--devices",
            str(path),
            "--duration",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "simulating 12 meters at 900x" in result.output
    device_map = load_device_map(path)
    assert sorted(m.meter_id for m in device_map.meters) == [f"M-{i:05d}" for i in range(1, 13)]
    protocols = sorted(d.protocol for d in device_map.devices)
    assert protocols == ["modbus", "opcua"]  # 20 % of 12 meters on OPC-UA, the rest on Modbus
    opcua = next(d for d in device_map.devices if d.protocol == "opcua")
    assert len(opcua.meters) == 2  # int(12 x 0.2)
