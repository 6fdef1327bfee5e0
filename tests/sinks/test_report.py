"""The carbon credit report: JSON sections, and HTML that headless Chromium draws and prints."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from sinks.catalogue import run_query
from sinks.report import ENERGY_COLOURS, INTENSITY_COLOUR, render_html, report_data
from sinks.store import Store
from sinks.writer import Writer
from tests.sinks import dataset

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (infra/system-packages.txt; make test)")
    return path


def _render(html: str, tmp: Path, name: str, *extra: str) -> None:
    page = tmp / f"{name}.html"
    page.write_text(html)
    subprocess.run(
        [
            _chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp / ('profile-' + name)}",
            *extra,
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _pixels(png: Path, hex_colour: str, tolerance: int = 40) -> int:
    """How many pixels are close to `hex_colour` (anti-aliasing tolerated)."""
    want = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    image = Image.open(png).convert("RGB")
    return sum(
        1
        for px in image.getdata()
        if all(abs(a - b) <= tolerance for a, b in zip(px, want, strict=True))
    )


@pytest.fixture
def report(store: Store) -> dict:
    dataset.load(Writer(store))
    return report_data(
        run_query(store, "credit-report", {"account_id": "E1", "as_of": dataset.AS_OF})
    )


def test_report_json_has_every_section(report: dict) -> None:
    assert report["account"]["name"] == "Alpha Cement"
    assert report["industry_percentile"]["better_than_pct"] == 50.0
    assert [r["month"] for r in report["intensity_trend"]] == ["2026-01-01", "2026-02-01"]
    assert len(report["colour_history"]) == 2 and len(report["eligible_products"]) == 1


def test_html_is_self_contained_and_chromium_draws_the_charts(report: dict, tmp_path: Path) -> None:
    html = render_html(report, as_of=dataset.AS_OF)
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert html.count("<svg") == 2
    shot = tmp_path / "report.png"
    _render(html, tmp_path, "report", f"--screenshot={shot}", "--window-size=900,1400")
    # electricity bars (Jan 2.0, Feb 3.0 tCO2e), the gas bar and the intensity line are
    # drawn: bars are ~50 px wide and up to ~200 px tall, the line 3 px over ~560 px
    assert _pixels(shot, ENERGY_COLOURS["electricity"]) > 3000
    assert _pixels(shot, ENERGY_COLOURS["natural_gas"]) > 800
    assert _pixels(shot, INTENSITY_COLOUR) > 800
    # the control: the same page without data draws none of those
    empty = dict(report, emissions_by_month=[], intensity_trend=[])
    blank = tmp_path / "empty.png"
    _render(
        render_html(empty), tmp_path, "empty", f"--screenshot={blank}", "--window-size=900,1400"
    )
    assert _pixels(blank, ENERGY_COLOURS["electricity"]) < 50
    assert _pixels(blank, INTENSITY_COLOUR) < 50


def test_html_prints_to_pdf(report: dict, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    _render(
        render_html(report), tmp_path, "print", f"--print-to-pdf={pdf}", "--no-pdf-header-footer"
    )
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = data.count(b"/Type /Page") - data.count(b"/Type /Pages")
    assert 1 <= pages <= 3
