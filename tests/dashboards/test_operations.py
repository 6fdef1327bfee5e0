"""Every PromQL expression of the committed dashboards parses (promtool) and names only
metrics that a running process of ours exports (a live scrape of the demo)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dashboards.queries import PROMQL
from tests.live_demo import exported_names, running_demo, scrape

JSON_DIR = Path(__file__).parents[2] / "dashboards" / "json"
#: Grafana's own variables, as Grafana would fill them for a 1-hour range
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
#: metric names: ours, and prometheus-client's process and Python collectors
METRIC = re.compile(r"\b(?:carbon_accounts|process|python)_[a-z0-9_]+\b")

promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian prometheus) not installed"
)


def committed_promql() -> list[str]:
    """The `expr` of every Prometheus target in dashboards/json, Grafana variables filled."""
    out = []
    for path in sorted(JSON_DIR.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                if "expr" in target:
                    assert target["datasource"]["type"] == "prometheus"
                    expr = target["expr"]
                    for name, value in GRAFANA_VARIABLES.items():
                        expr = expr.replace(name, value)
                    assert "$" not in expr, f"unfilled variable in {target['expr']}"
                    out.append(expr)
    return out


@pytest.fixture(scope="module")
def demo_names(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    with running_demo(tmp_path_factory.mktemp("ops-demo")) as url:
        yield exported_names(scrape(url))


def test_committed_expressions_are_the_catalogue() -> None:
    filled = set(committed_promql())
    expected = set()
    for expr in PROMQL.values():
        for name, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(name, value)
        expected.add(expr)
    assert filled == expected


@promtool
def test_every_expression_parses(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": expr}
                    for i, expr in enumerate(committed_promql(), start=1)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(committed_promql())} rules found" in out.stdout


def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    # the check above can fail: promtool refuses an unbalanced expression
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed")
    path = tmp_path / "bad.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "dashboard:bad", "expr": "sum by (topic (carbon_accounts_dlq_records_total)"}
    ]}]}))  # fmt: skip
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, timeout=60)
    assert out.returncode != 0


def test_every_metric_named_is_exported_by_a_running_process(demo_names: set[str]) -> None:
    named = {m for expr in committed_promql() for m in METRIC.findall(expr)}
    assert any(n.startswith("carbon_accounts_") for n in named)
    assert "process_cpu_seconds_total" in named
    missing = named - demo_names
    assert not missing, f"panels name metrics no process exports: {sorted(missing)}"
    # the check can fail: a misspelt name is not in the scrape
    assert "carbon_accounts_stream_consumer_lag_total" not in demo_names
