"""Shared fixtures: a real embedded broker and a real ClickHouse engine (chdb), no mocks.

- `broker` (session): one noida-db Kafka for the whole run; tests make their own topics
  (use `unique` names) so they do not see each other's data.
- `chdb_store` (session): chdb runs one engine per process, so one store for the run;
  `store` gives each test a fresh database with the DDL applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.broker import EmbeddedBroker
from schemas.settings import Settings
from sinks.store import Store, open_store


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-full",
        action="store_true",
        help="run benchmarks at full size (make bench); default: a tiny size",
    )


@pytest.fixture(scope="session")
def bench_full(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--bench-full"))


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, group and database names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    data = tmp_path_factory.mktemp("kafka")
    with EmbeddedBroker(data / "data", log_file=data / "broker.log") as b:
        yield b


@pytest.fixture(scope="session")
def bootstrap(broker: EmbeddedBroker) -> str:
    return broker.bootstrap


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with data under the test's tmp_path, Kafka unset (embedded)."""
    return Settings(data_dir=str(tmp_path / "var"))


@pytest.fixture(scope="session")
def chdb_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path = tmp_path_factory.mktemp("clickhouse")
    store = open_store(Settings(data_dir=str(path)))
    yield store
    store.close()


@pytest.fixture
def store(chdb_store: Store, unique: str) -> Iterator[Store]:
    """The session's chdb store switched to a fresh database with the DDL applied."""
    chdb_store.use_database(f"test_{unique}")
    yield chdb_store
    chdb_store.command(f"DROP DATABASE IF EXISTS `test_{unique}`")
