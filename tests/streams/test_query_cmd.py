"""`carbon-accounts query` and `report`: formats, exit code 2 on bad input, and the
store-in-use path: a second process asks the owner's query endpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from infra.broker import free_port
from streams.cli import cli
from streams.cli.query_cmd import format_sections

ROOT = Path(__file__).resolve().parents[2]

# the owner: opens the embedded store, loads the fixed data set, serves the catalogue
OWNER = """
import asyncio, sys
from schemas.settings import load_settings
from sinks.store import open_store
from sinks.serve import QueryServer
from sinks.writer import Writer
from tests.sinks import dataset

async def main():
    settings = load_settings()
    store = open_store(settings)
    dataset.load(Writer(store))
    server = QueryServer(store, settings.streams.web_port)
    await server.start()
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()
    store.close()

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "no-such"], "unknown query 'no-such'"),
        (["query", "top-emitters", "-p", "from_date=2026-01-01"], "missing parameter to_date"),
        (
            ["query", "top-emitters", "-p", "from_date=x", "-p", "to_date=2026-01-01"],
            "'x' is not a valid Date",
        ),
        (["query", "top-emitters", "-p", "from_date"], "expected NAME=VALUE"),
        (["report", "E1", "--as-of", "yesterday"], "not a valid DateTime64"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args: list[str], message: str) -> None:
    # checked before any store is opened
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_formats() -> None:
    sections = [{"section": "top", "columns": ["rank", "tco2e"], "rows": [[1, 8.0], [2, None]]}]
    assert format_sections(sections, "csv") == "rank,tco2e\n1,8.0\n2,\n"
    assert json.loads(format_sections(sections, "json")) == {
        "top": [{"rank": 1, "tco2e": 8.0}, {"rank": 2, "tco2e": None}]
    }
    table = format_sections(sections, "table").splitlines()
    assert table[0].split() == ["rank", "tco2e"] and table[2].split() == ["1", "8"]
    assert table[-1] == "(2 rows)"


def test_query_and_report_work_while_another_process_owns_the_store(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CARBON_ACCOUNTS_DATA_DIR": str(tmp_path / "var"),
        "CARBON_ACCOUNTS_STREAMS_WEB_PORT": str(free_port()),
    }
    env.pop("CLICKHOUSE_URL", None)
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        assert "READY" in line, line + owner.stdout.read()[-2000:]

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "streams", *args],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                cwd=tmp_path,
            )

        out = run(
            "query",
            "top-emitters",
            "-p",
            "from_date=2026-01-01",
            "-p",
            "to_date=2026-02-28",
            "-p",
            "limit=2",
            "--format",
            "csv",
        )
        assert out.returncode == 0, out.stderr[-2000:]
        # hand-computed in tests/sinks/dataset.py: E2 8.0, E1 6.0
        assert out.stdout.splitlines() == [
            "rank,account_id,name,area,industry_code,tco2e",
            "1,E2,Beta Cement,industry,3011,8.0",
            "2,E1,Alpha Cement,industry,3011,6.0",
        ]
        out = run("report", "E1", "--format", "json", "--as-of", "2026-03-01T00:00:00+08:00")
        assert out.returncode == 0, out.stderr[-2000:]
        report = json.loads(out.stdout)
        assert report["account"]["colour"] == "light_green"
        assert report["industry_percentile"]["better_than_pct"] == 50.0
        out = run("report", "E1", "--format", "html", "--as-of", "2026-03-01T00:00:00+08:00")
        assert out.returncode == 0 and out.stdout.count("<svg") == 2
    finally:
        owner.communicate("", timeout=60)
        if owner.poll() is None:
            owner.send_signal(signal.SIGKILL)
    assert owner.returncode == 0


def test_query_opens_the_store_itself_when_free(tmp_path: Path) -> None:
    env = {**os.environ, "CARBON_ACCOUNTS_DATA_DIR": str(tmp_path / "var")}
    env.pop("CLICKHOUSE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "streams", "query", "loan-eligibility", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == {"eligibility": []}


async def test_sink_command_stores_and_commits(tmp_path: Path, bootstrap: str, unique: str) -> None:
    from infra.broker import ensure_topics
    from schemas.topics import all_topics
    from tests.sinks.dataset import window
    from tests.sinks.kafka_util import committed_equals_end, produce

    await ensure_topics(bootstrap, [(t.name, 2, t.compacted) for t in all_topics()])
    account = f"S-{unique}"
    record = window(account, "electricity", "2026-04-01T00:00:00+00:00", 7.25, 0).dumps()
    await produce(bootstrap, [("emissions.windows", account.encode(), record)])
    group = f"sink-cli-{unique}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CARBON_ACCOUNTS_DATA_DIR": str(tmp_path / "var"),
        "CARBON_ACCOUNTS_SINKS_GROUP_ID": group,
        "CARBON_ACCOUNTS_SINKS_BATCH_SECONDS": "0.2",
        "CARBON_ACCOUNTS_STREAMS_WEB_PORT": str(free_port()),
    }
    env.pop("CLICKHOUSE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "streams", "sink", "--duration", "6"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "sink running" in out.stdout and "sink stopped" in out.stdout
    assert await committed_equals_end(bootstrap, group, ["emissions.windows"])
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams",
            "query",
            "top-emitters",
            "-p",
            "from_date=2026-04-01",
            "-p",
            "to_date=2026-04-30",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout)["top"]
    assert [(r["account_id"], r["tco2e"]) for r in rows if r["account_id"] == account] == [
        (account, 7.25)
    ]
