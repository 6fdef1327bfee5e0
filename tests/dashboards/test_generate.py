"""The committed dashboard JSON is what the code generates (`make dashboards`)."""

from __future__ import annotations

import json
from pathlib import Path

from dashboards.generate import DASHBOARDS, JSON_DIR, main, render, stale


def test_committed_json_is_up_to_date() -> None:
    assert stale() == [], "dashboards/json is stale: run `make dashboards` and commit"


def test_check_fails_on_a_stale_file_and_generate_repairs_it(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--check", "--out", str(tmp_path)]) == 0
    path = tmp_path / "operations.json"
    path.write_text(path.read_text().replace("Operations", "Ops"))
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert stale(tmp_path) == ["operations"]


def test_dashboards_are_distinct_and_panels_numbered() -> None:
    uids = set()
    for name in DASHBOARDS:
        board = json.loads(render(name))
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert ids == list(range(1, len(ids) + 1))
        assert (JSON_DIR / f"{name}.json").exists()
    assert len(uids) == len(DASHBOARDS)
