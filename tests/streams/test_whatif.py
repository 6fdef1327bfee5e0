"""What-if on a small fixed data set in the real ClickHouse engine, answers computed by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from schemas.contracts import Benchmark
from schemas.settings import Settings
from sinks.store import Store
from streams.cli.whatif_cmd import render
from streams.rules.labelling import RuleBook
from streams.whatif import whatif

# local (Asia/Shanghai) year 2025 = [2024-12-31 16:00 UTC, 2025-12-31 16:00 UTC)
Y0, Y1 = datetime(2024, 12, 31, 16, tzinfo=UTC), datetime(2025, 12, 31, 16, tzinfo=UTC)


def _bench(code: str, region: str, value: float, version: str) -> Benchmark:
    return Benchmark(
        area="industry",
        industry_code=code,
        region=region,
        period_start=Y0,
        period_end=Y1,
        value=value,
        unit="tCO2e/10k_yuan",
        source="test",
        version=version,
    )


def _fill(store: Store) -> None:
    cols = ["account_id", "area", "name", "region", "district", "industry_code",
            "denominator_unit", "timezone"]  # fmt: skip
    store.insert(
        "accounts",
        [
            ["W1", "industry", "w1", "east", "d", "C2614", "10k_yuan", "Asia/Shanghai"],
            ["W2", "industry", "w2", "east", "d", "C2614", "10k_yuan", "Asia/Shanghai"],
            ["W3", "industry", "w3", "east", "d", "C3011", "10k_yuan", "Asia/Shanghai"],
            ["R1", "daily_life", "r1", "east", "d", "", "", "Asia/Shanghai"],
        ],
        cols,
    )
    store.insert(
        "denominators",
        [[a, Y0, Y1, 100.0, "10k_yuan"] for a in ("W1", "W2", "W3", "R1")],
        ["account_id", "period_start", "period_end", "value", "unit"],
    )
    store.insert(
        "benchmarks",
        [[b.area, b.industry_code, b.region, b.period_start, b.period_end, b.value, b.unit,
          b.source, b.version] for b in (_bench("C26", "*", 10.0, "v1"),
                                         _bench("C30", "*", 12.0, "v1"))],
        ["area", "industry_code", "region", "period_start", "period_end", "value", "unit",
         "source", "version"],
    )  # fmt: skip
    wcols = ["account_id", "energy_type", "window_start", "window_end", "consumption", "unit",
             "tco2e", "factor_id", "factor_version", "factor_value", "factor_unit", "uncertain",
             "revision"]  # fmt: skip
    rows = []
    # monthly tCO2e in 2025: W1 100, W2 50, W3 200, the resident 1; one window of 2026-01
    for account, t in (("W1", 100.0), ("W2", 50.0), ("W3", 200.0), ("R1", 1.0)):
        for m in range(1, 13):
            start = datetime(2025, m, 10, tzinfo=UTC)
            rows.append([account, "electricity", start, start, t, "kWh", t, "f", "v", 1.0,
                         "t/kWh", False, 1])  # fmt: skip
        jan = datetime(2026, 1, 10, tzinfo=UTC)
        rows.append([account, "electricity", jan, jan, 1.0, "kWh", 1.0, "f", "v", 1.0,
                     "t/kWh", False, 0])  # fmt: skip
    # an older revision of W1's March (999 t): FINAL keeps revision 1 (100 t)
    mar = datetime(2025, 3, 10, tzinfo=UTC)
    rows.append(["W1", "electricity", mar, mar, 999.0, "kWh", 999.0, "f", "v", 1.0, "t/kWh",
                 False, 0])  # fmt: skip
    store.insert("emissions_15m", rows, wcols)
    store.insert(
        "account_labels",
        [["W1", "industry", "C2614", "east", None, "light_green", 1.2, 12.0, 10.0, "v1",
          Y0, Y1, "first_evaluation", 1, Y1]],
        ["account_id", "area", "industry_code", "region", "old_colour", "new_colour", "k",
         "intensity", "benchmark", "benchmark_version", "period_start", "period_end", "reason",
         "revision", "ts"],
    )  # fmt: skip


def test_whatif_counts_per_industry(store: Store) -> None:
    _fill(store)
    settings = Settings()  # months in Asia/Shanghai
    # In force: intensity = 12 x monthly / 100: W1 12, W2 6, W3 24.
    #   W1 K 12/10 = 1.2 light green; W2 6/10 = 0.6 dark green; W3 24/12 = 2.0 yellow.
    # Proposed: C26 for east = 7.5 and C30 anywhere = 25:
    #   W1 K 12/7.5 = 1.6 yellow (worse); W2 6/7.5 = 0.8 dark green (same);
    #   W3 24/25 = 0.96 light green (better). The resident is never labelled.
    proposal = [_bench("C26", "east", 7.5, "v2"), _bench("C30", "*", 25.0, "v2")]
    result = whatif(store, settings, proposal, RuleBook())
    got = {(c.account_id, c.current, c.proposed, c.live) for c in result.changes}
    assert got == {
        ("W1", "light_green", "yellow", "light_green"),
        ("W2", "dark_green", "dark_green", None),
        ("W3", "yellow", "light_green", None),
    }
    summary = {
        (i.area, i.industry): (i.accounts, i.changed, dict(i.directions)) for i in result.industries
    }
    assert summary == {
        ("industry", "C26"): (2, 1, {"worse": 1, "same": 1}),
        ("industry", "C30"): (1, 1, {"better": 1}),
    }
    assert result.changed == 2
    # live labels untouched
    assert store.query("SELECT count() FROM account_labels").result_rows == [(1,)]

    # replace: only the proposal is in force; W3 (C30) has no benchmark: loses its colour
    result = whatif(store, settings, proposal[:1], RuleBook(), replace=True)
    assert {(c.account_id, c.direction) for c in result.changes} == {
        ("W1", "worse"),
        ("W2", "same"),
        ("W3", "loses"),
    }


def test_whatif_render(store: Store) -> None:
    _fill(store)
    proposal = [_bench("C26", "east", 7.5, "v2")]
    result = whatif(store, Settings(), proposal, RuleBook())
    console = Console(record=True, width=120)
    render(result, console)
    text = console.export_text()
    assert "what-if: 1 of 3 accounts change" in text
    assert "W1 (C2614): light_green -> yellow  K 1.200 -> 1.600" in text


def test_whatif_command_on_an_empty_store(tmp_path: Path) -> None:
    # its own process: chdb runs one engine per process and this one has the test store
    proposal = tmp_path / "p.yaml"
    proposal.write_text(
        "benchmarks:\n"
        "  - {area: industry, industry_code: C26, region: '*', period_start: 2025-01-01,\n"
        "     period_end: 2026-01-01, value: 2, unit: tCO2e/10k_yuan, source: s, version: v}\n"
    )
    env = {**os.environ, "CARBON_ACCOUNTS_DATA_DIR": str(tmp_path / "var")}
    env.pop("CLICKHOUSE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "streams", "whatif", "--benchmark", str(proposal), "--format",
         "json"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == {
        "accounts": 0, "changed": 0, "industries": [], "changed_accounts": []
    }  # fmt: skip
