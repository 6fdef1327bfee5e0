"""Fixtures of the sink tests: the three tiers of ClickHouse access.

- `chdb`: clickhouse-connect's chdb:// backend in this process (the `store` fixture);
- `http`: clickhouse-connect's HTTP client against `tests/sinks/chdb_http.py`, a
  subprocess serving chdb behind ClickHouse's HTTP interface (not a ClickHouse server);
- `server`: a real ClickHouse server at CLICKHOUSE_URL; skipped, with the reason, if unset.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.broker import free_port
from schemas.settings import ClickHouseSettings, Settings, load_settings
from sinks.store import Store, open_store

HERE = Path(__file__).parent


class ChdbHttp:
    """The chdb HTTP fixture as a child process; stop and start it at will."""

    def __init__(self, path: Path, port: int | None = None) -> None:
        self.path = path
        self.port = port or free_port()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def dsn(self) -> str:
        """clickhouse-connect's URL of it."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ChdbHttp:
        """Start it and wait for READY."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "chdb_http.py"),
                "--port",
                str(self.port),
                "--path",
                str(self.path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "READY" not in line or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"chdb HTTP fixture did not start: {line}")
        return self

    def stop(self, kill: bool = False) -> None:
        """Stop it: SIGKILL (an outage mid-write) or SIGTERM."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def chdb_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbHttp]:
    """One chdb HTTP fixture for the session (tests that stop it make their own)."""
    server = ChdbHttp(tmp_path_factory.mktemp("chdb-http")).start()
    yield server
    server.stop()


def remote_store(dsn: str, database: str) -> Store:
    """A Store on an HTTP endpoint (the fixture or a server), database created, DDL applied."""
    settings = Settings(clickhouse=ClickHouseSettings(url=dsn, database=database))
    return open_store(settings)


def server_url() -> str:
    """CLICKHOUSE_URL, or skip the test naming tier 3."""
    dsn = load_settings().clickhouse.url
    if not dsn:
        pytest.skip("tier 3 (a real ClickHouse server): CLICKHOUSE_URL is not set")
    return dsn


@pytest.fixture(params=["chdb", "http", "server"])
def backend(request: pytest.FixtureRequest, unique: str) -> Iterator[Store]:
    """A fresh database with the DDL, on each of the three tiers in turn."""
    database = f"test_{unique}"
    if request.param == "chdb":
        yield request.getfixturevalue("store")
        return
    dsn = request.getfixturevalue("chdb_http").dsn if request.param == "http" else server_url()
    store = remote_store(dsn, database)
    try:
        yield store
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{database}`")
        store.close()
