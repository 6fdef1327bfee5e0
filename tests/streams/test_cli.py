"""The console script: config show, schemas export, demo start-to-stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from streams.cli import cli


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = {"CLICKHOUSE_URL": "http://u:topsecret@ch:8123", "CARBON_ACCOUNTS_KAFKA_PARTITIONS": "3"}
    result = CliRunner().invoke(cli, ["config", "show", "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["kafka"]["partitions"] == 3
    assert "topsecret" not in result.output


def test_config_error_is_a_usage_error() -> None:
    result = CliRunner().invoke(
        cli, ["config", "show"], env={"CARBON_ACCOUNTS_KAFKA_PARTITIONS": "x"}
    )
    assert result.exit_code == 2
    assert "partitions" in result.output


def test_schemas_export(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["schemas", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "Reading.json").read_text())["x-topic"] == "meter.readings"


def test_demo_starts_and_stops_cleanly(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CARBON_ACCOUNTS_DATA_DIR": str(tmp_path / "var"),
        "CARBON_ACCOUNTS_KAFKA_PARTITIONS": "2",
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("CLICKHOUSE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "streams", "demo", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "ready" in out.stdout
    assert "stopped cleanly" in out.stdout
    assert (tmp_path / "var" / "kafka").is_dir()
    assert (tmp_path / "var" / "clickhouse").is_dir()
