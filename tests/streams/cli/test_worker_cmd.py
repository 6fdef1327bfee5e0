"""`carbon-accounts worker`: a Faust worker on a real broker, serving /metrics, stopping cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from infra.broker import free_port
from streams.cli import cli
from streams.cli.worker_cmd import select_agents
from tests.live_demo import scrape


def test_worker_serves_metrics_and_stops_on_sigterm(bootstrap: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CARBON_ACCOUNTS_DATA_DIR": str(tmp_path / "var"),
        "CARBON_ACCOUNTS_KAFKA_PARTITIONS": "2",
        "CARBON_ACCOUNTS_STREAMS_APP_ID": f"worker-test-{port}",
        "CARBON_ACCOUNTS_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams", "worker", "--duration", "4", "--metrics-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        text, deadline = "", time.monotonic() + 30
        while not text and time.monotonic() < deadline and proc.poll() is None:
            try:
                text = scrape(f"http://127.0.0.1:{port}/metrics")
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert "carbon_accounts_stream_consumer_lag" in text
    assert "process_cpu_seconds_total" in text
    assert proc.returncode == 0, out[-3000:]
    assert f"metrics http://127.0.0.1:{port}/metrics" in out
    assert "worker stopped" in out


def test_worker_needs_a_kafka_address() -> None:
    result = CliRunner().invoke(cli, ["worker"], env={"KAFKA_BOOTSTRAP_SERVERS": ""})
    assert result.exit_code == 2
    assert "KAFKA_BOOTSTRAP_SERVERS" in result.output


def test_unknown_agents_are_refused() -> None:
    with pytest.raises(click.UsageError, match="no-such-agent"):
        select_agents("no-such-agent", None)
    with pytest.raises(click.UsageError, match="nope"):
        select_agents(None, "nope")
