"""`carbon-accounts replay`: the same rules over a file of readings, final revisions only."""

from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner

from streams.cli import cli


def reading(meter: str, value: float, ts: str, **extra: object) -> str:
    return json.dumps(
        {
            "meter_id": meter,
            "account_id": "ENT-1",
            "energy_type": "electricity",
            "kind": "cumulative",
            "value": value,
            "unit": "kWh",
            "ts": ts,
            "quality": "good",
            "source": "test",
            "seq": 1,
            **extra,
        }
    )


def test_replay_writes_final_windows(tmp_path: Path) -> None:
    lines = [
        reading("M1", 130.0, "2026-03-01T08:30:00+08:00"),  # out of order: sorted by ts
        reading("M1", 100.0, "2026-03-01T00:00:00Z"),
        reading("M1", 120.0, "2026-03-01T08:15:00+08:00"),
        reading("M1", 5.0, "2026-03-01T00:15:00Z", quality="bad"),  # a duplicate ts, bad
        "not json",
    ]
    src = tmp_path / "readings.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "windows.jsonl"
    result = CliRunner().invoke(cli, ["replay", str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "bad_encoding 1" in result.output and "bad_quality 1" in result.output
    windows = [json.loads(line) for line in out.read_text().splitlines()]
    # [00:00, 00:15) = 20, [00:15, 00:30) = 10 UTC, each the final (and only) revision
    assert [(w["window_start"], w["consumption"], w["revision"]) for w in windows] == [
        ("2026-03-01T00:00:00+00:00", 20.0, 1),
        ("2026-03-01T00:15:00+00:00", 10.0, 1),
    ]
    needed = {"account_id", "energy_type", "window_start", "window_end", "consumption", "unit"}
    needed |= {"tco2e", "factor_id", "factor_version", "factor_value", "revision"}
    assert needed <= set(windows[0])
    assert math.isclose(windows[0]["tco2e"], 20 * 0.5306 / 1000)


def test_replay_applies_factor_revisions(tmp_path: Path) -> None:
    src = tmp_path / "readings.jsonl"
    src.write_text(
        reading("M1", 0.0, "2026-03-01T00:00:00Z")
        + "\n"
        + reading("M1", 1000.0, "2026-03-01T00:15:00Z")
        + "\n"
    )
    factors = tmp_path / "factors.jsonl"
    factors.write_text(
        json.dumps(
            {
                "factor_id": "grid-national-average-2023",
                "energy_type": "electricity",
                "region": "national",
                "value": 0.0006,
                "unit": "tCO2e/kWh",
                "effective_from": "2023-01-01T00:00:00Z",
                "effective_to": None,
                "source": "revision",
                "version": "2",
            }
        )
    )
    result = CliRunner().invoke(cli, ["replay", str(src), "--factors", str(factors)])
    assert result.exit_code == 0, result.output
    (window,) = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert window["factor_version"] == "2"
    assert math.isclose(window["tco2e"], 0.6)  # 1000 kWh x 0.0006 t/kWh
