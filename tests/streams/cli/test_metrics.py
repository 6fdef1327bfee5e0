"""`serve_metrics`: /metrics on 127.0.0.1, the next free port when busy, all our metrics."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from infra.broker import free_port
from schemas.settings import MetricsSettings, Settings
from streams.cli._metrics import METRICS_MODULES, serve_metrics


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def _defined_metric_names() -> set[str]:
    """Names of every metric object the metrics modules define (read from the objects)."""
    names = set()
    for module_name in METRICS_MODULES:
        module = importlib.import_module(module_name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            if isinstance(obj, Counter | Gauge | Histogram):
                names.add(obj._name)
    return names


def test_serves_every_metric_and_process_metrics_on_loopback() -> None:
    server = serve_metrics(Settings(metrics=MetricsSettings(port=0)))
    assert server is not None
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        families = {f.name: f for f in text_string_to_metric_families(_scrape(server.url))}
    finally:
        server.close()
    defined = _defined_metric_names()
    # at least the foundation's: collectors 7, streams 7, sinks 4, dlq 1 (others add more)
    assert len(defined) >= 19
    assert defined <= families.keys()
    # CPU and memory come from prometheus-client's process collector
    assert families["process_cpu_seconds"].samples[0].value >= 0
    assert families["process_resident_memory_bytes"].samples[0].value > 0


def test_busy_port_takes_the_next_free_one() -> None:
    busy = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        server = serve_metrics(Settings(metrics=MetricsSettings(port=busy)))
        assert server is not None
        try:
            assert server.port != busy
            assert "carbon_accounts_dlq_records_total" in _scrape(server.url)
        finally:
            server.close()


def test_explicit_port_overrides_settings_and_disabled_serves_nothing() -> None:
    port = free_port()
    server = serve_metrics(Settings(metrics=MetricsSettings(port=1)), port)
    assert server is not None
    try:
        assert server.port == port
    finally:
        server.close()
    assert serve_metrics(Settings(metrics=MetricsSettings(enabled=False))) is None


def test_demo_prints_where_metrics_are_served(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CARBON_ACCOUNTS_DATA_DIR": str(tmp_path / "var"),
        "CARBON_ACCOUNTS_KAFKA_PARTITIONS": "2",
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("CLICKHOUSE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "streams", "demo", "--duration", "1", "--metrics-port", str(port)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"metrics     http://127.0.0.1:{port}/metrics" in out.stdout
