"""A running `carbon-accounts demo` for tests that need a live /metrics endpoint.

Shared by tests/dashboards (names in panels are exported) and tests/infra (a real
Prometheus scrapes it). The demo runs in a subprocess (it owns a chdb store), on the
embedded broker, and stops on SIGTERM; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from infra.broker import free_port

__all__ = ["exported_names", "running_demo", "scrape"]

#: the sample names each metric type exposes, from its family name
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}


def scrape(url: str) -> str:
    """The text of one scrape."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def exported_names(text: str) -> set[str]:
    """Every sample name a scrape exports or declares (families without samples too)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in _SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


@contextmanager
def running_demo(tmp_path: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run the demo with metrics on a free port; yields the /metrics URL."""
    port = free_port()
    env = {
        **os.environ,
        "CARBON_ACCOUNTS_DATA_DIR": str(tmp_path / "demo-var"),
        "CARBON_ACCOUNTS_KAFKA_PARTITIONS": "2",
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("CLICKHOUSE_URL", None)
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams", "demo", "--duration", str(timeout + 60),
         "--metrics-port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"demo exited: {(tmp_path / 'demo.log').read_text()[-2000:]}")
            try:
                scrape(url)
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no {url} within {timeout}s") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
