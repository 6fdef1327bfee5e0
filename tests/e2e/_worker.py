"""`carbon-accounts worker` as a subprocess, for the e2e tests that stop and restart it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["start_worker", "stop_worker"]


def start_worker(
    bootstrap: str, tmp_path: Path, app_id: str, *args: str, **env: str
) -> subprocess.Popen[bytes]:
    """A worker on `bootstrap` with its data under `tmp_path`, log in tmp_path/worker.log;
    `args` go to the command (`--agents labelling`), `env` to its environment."""
    environ = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CARBON_ACCOUNTS_DATA_DIR": str(tmp_path / "var"),
        "CARBON_ACCOUNTS_STREAMS_APP_ID": app_id,
        "CARBON_ACCOUNTS_METRICS_ENABLED": "false",
        **env,
    }
    log = (tmp_path / "worker.log").open("a")
    return subprocess.Popen(
        [sys.executable, "-m", "streams", "worker", *args],
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a clean stop), SIGKILL after 30 s."""
    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=10)
