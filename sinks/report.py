"""The carbon credit report of one account: JSON, and a self-contained printable HTML page.

The data are the sections of the `credit-report` catalogue query. The HTML has no
external resource (no script, font or image fetched): CSS inline, charts as inline SVG
(monthly emissions stacked by energy type, intensity trend), and print rules for A4.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sinks.catalogue import SectionResult

__all__ = ["COLOURS", "ENERGY_COLOURS", "dumps", "jsonable", "render_html", "report_data"]

#: label colours as printed
COLOURS = {
    "dark_green": "#1b5e20",
    "light_green": "#7cb342",
    "yellow": "#f9a825",
    "red": "#c62828",
}
#: series colours of the emissions chart (distinct from the label colours)
ENERGY_COLOURS = {
    "electricity": "#1565c0",
    "natural_gas": "#ef6c00",
    "heat": "#8e24aa",
    "steam": "#6d4c41",
    "coal": "#37474f",
}
_OTHER = "#00897b"
INTENSITY_COLOUR = "#d81b60"


def jsonable(value: Any) -> Any:
    """A value as JSON shows it: dates ISO, datetimes ISO in UTC with Z."""
    if isinstance(value, datetime):
        text = value.isoformat(timespec="milliseconds")
        return text.replace("+00:00", "Z") if value.tzinfo else text + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return value


def report_data(sections: list[SectionResult] | Mapping[str, Any]) -> dict[str, Any]:
    """The report as a JSON-able dict: {section: [rows as dicts]}; `account` is one dict."""
    if isinstance(sections, Mapping):  # already JSON (from the HTTP endpoint)
        return dict(sections)
    out: dict[str, Any] = {}
    for s in sections:
        rows = [{k: jsonable(v) for k, v in r.items()} for r in s.records()]
        out[s.section] = rows
    out["account"] = out.get("account", [{}])[0] if out.get("account") else {}
    out["industry_percentile"] = (
        out["industry_percentile"][0] if out.get("industry_percentile") else {}
    )
    return out


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return _e(value)


def _bar_chart(rows: list[dict[str, Any]]) -> str:
    """Monthly emissions stacked by energy type, as an SVG."""
    months = sorted({r["month"] for r in rows})
    types = sorted({r["energy_type"] for r in rows})
    width, height, left, bottom, top = 640, 260, 56, 36, 16
    if not months:
        return '<p class="empty">No emissions in the last 12 months.</p>'
    totals = {m: sum(r["tco2e"] for r in rows if r["month"] == m) for m in months}
    peak = max(totals.values()) or 1.0
    plot_w, plot_h = width - left - 10, height - bottom - top
    slot = plot_w / len(months)
    bar_w = max(8.0, slot * 0.6)
    parts = [
        f'<svg class="chart" id="emissions-chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="emissions by month">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
        'stroke="#444" stroke-width="1"/>',
    ]
    for i in range(5):
        v = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{v:.2f}</text>'
        )
    for i, m in enumerate(months):
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h
        for t in types:
            v = sum(r["tco2e"] for r in rows if r["month"] == m and r["energy_type"] == t)
            h = plot_h * v / peak
            if h > 0:
                y -= h
                colour = ENERGY_COLOURS.get(t, _OTHER)
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                    f'fill="{colour}"><title>{_e(m)} {_e(t)}: {v:.3f} tCO2e</title></rect>'
                )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
            f'font-size="10">{_e(str(m)[:7])}</text>'
        )
    parts.append(
        f'<text x="12" y="{top + plot_h / 2}" font-size="10" '
        f'transform="rotate(-90 12 {top + plot_h / 2})" text-anchor="middle">tCO2e</text>'
    )
    parts.append("</svg>")
    legend = " ".join(
        f'<span class="swatch" style="background:{ENERGY_COLOURS.get(t, _OTHER)}"></span>{_e(t)}'
        for t in types
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _line_chart(rows: list[dict[str, Any]], unit: str) -> str:
    """Monthly intensity as an SVG line with points."""
    points = [(r["month"], r["intensity"]) for r in rows if r.get("intensity") is not None]
    if not points:
        return '<p class="empty">No intensity: no denominators for these months.</p>'
    width, height, left, bottom, top = 640, 220, 56, 36, 26
    plot_w, plot_h = width - left - 20, height - bottom - top
    peak = max(v for _m, v in points) or 1.0
    step = plot_w / max(1, len(points) - 1)
    xy = [
        (left + (step * i if len(points) > 1 else plot_w / 2), top + plot_h - plot_h * v / peak)
        for i, (_m, v) in enumerate(points)
    ]
    parts = [
        f'<svg class="chart" id="intensity-chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="intensity trend">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
        'stroke="#444" stroke-width="1"/>',
        f'<polyline fill="none" stroke="{INTENSITY_COLOUR}" stroke-width="3" points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        + '"/>',
    ]
    for (m, v), (x, y) in zip(points, xy, strict=True):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{INTENSITY_COLOUR}">'
            f"<title>{_e(m)}: {v:.4f}</title></circle>"
            f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
            f'font-size="10">{_e(str(m)[:7])}</text>'
            f'<text x="{x:.1f}" y="{y - 9:.1f}" text-anchor="middle" font-size="10">{v:.3f}</text>'
        )
    parts.append(
        f'<text x="12" y="{top + plot_h / 2}" font-size="10" '
        f'transform="rotate(-90 12 {top + plot_h / 2})" text-anchor="middle">'
        f"tCO2e / {_e(unit)}</text></svg>"
    )
    return "".join(parts)


def _chip(colour: str | None) -> str:
    if not colour:
        return "–"
    return (
        f'<span class="chip" style="background:{COLOURS.get(colour, "#999")}"></span>'
        f"{_e(colour.replace('_', ' '))}"
    )


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    if not rows:
        return '<p class="empty">None.</p>'
    head = "".join(f"<th>{_e(title)}</th>" for _k, title in columns)
    body = []
    for r in rows:
        cells = []
        for key, _title in columns:
            v = r.get(key)
            cells.append(f"<td>{_chip(v) if 'colour' in key else _num(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_CSS = """
body { font-family: 'DejaVu Sans', Arial, sans-serif; color: #222; margin: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 22px 0 8px;
  border-bottom: 1px solid #ccc; padding-bottom: 3px; }
.meta { color: #555; font-size: 12px; }
.colour { font-size: 18px; margin: 10px 0; }
.chip { display: inline-block; width: 14px; height: 14px; border-radius: 3px;
  margin-right: 6px; vertical-align: middle; -webkit-print-color-adjust: exact;
  print-color-adjust: exact; }
.swatch { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }
.legend { font-size: 11px; margin-top: 2px; }
table { border-collapse: collapse; font-size: 12px; margin-top: 4px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f2f2f2; }
.empty { color: #777; font-style: italic; }
section { break-inside: avoid; page-break-inside: avoid; }
svg.chart { max-width: 100%; height: auto; }
* { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
@page { size: A4; margin: 15mm; }
@media print { body { margin: 0; } }
"""


def render_html(data: Mapping[str, Any], *, as_of: str = "") -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no script)."""
    acc = data.get("account") or {}
    pct = data.get("industry_percentile") or {}
    name = acc.get("name") or acc.get("account_id") or "unknown account"
    unit = acc.get("denominator_unit") or "unit"
    percentile = (
        f"Trailing-12-month intensity {_num(pct.get('intensity'), 4)} tCO2e/{_e(unit)}: "
        f"lower than {_num(pct.get('better_than_pct'), 1)}% of the other "
        f"{max(0, (pct.get('peers') or 1) - 1)} accounts of its industry."
        if pct.get("intensity") is not None
        else "Not enough data to rank it in its industry."
    )
    body = f"""
<h1>Carbon credit report — {_e(name)}</h1>
<div class="meta">Account {_e(acc.get("account_id"))} · area {_e(acc.get("area"))} ·
industry {_e(acc.get("industry_code"))} · region {_e(acc.get("region"))} ·
district {_e(acc.get("district"))} · as of {_e(as_of)}</div>
<div class="colour">Current colour: {_chip(acc.get("colour"))}
 <span class="meta">K = {_num(acc.get("k"), 3)} ({_e(acc.get("reason"))})</span></div>
<section><h2>Emissions by month and energy type (tCO2e)</h2>
{_bar_chart(data.get("emissions_by_month") or [])}</section>
<section><h2>Intensity trend (tCO2e per {_e(unit)})</h2>
{_line_chart(data.get("intensity_trend") or [], unit)}</section>
<section><h2>Industry position</h2><p>{percentile}</p></section>
<section><h2>Colour history</h2>
{
        _table(
            data.get("colour_history") or [],
            [
                ("ts", "evaluated (UTC)"),
                ("old_colour", "from"),
                ("new_colour", "to"),
                ("k", "K"),
                ("intensity", "intensity"),
                ("benchmark", "benchmark"),
                ("reason", "reason"),
            ],
        )
    }</section>
<section><h2>Eligible green loan products</h2>
{
        _table(
            data.get("eligible_products") or [],
            [
                ("name", "product"),
                ("lender", "lender"),
                ("credit_multiplier", "credit-limit multiplier"),
                ("rate_cut_bp", "rate cut (bp)"),
            ],
        )
    }</section>
<section><h2>Monthly figures</h2>
{
        _table(
            data.get("emissions_by_month") or [],
            [
                ("month", "month"),
                ("energy_type", "energy"),
                ("consumption", "consumption"),
                ("unit", "unit"),
                ("tco2e", "tCO2e"),
            ],
        )
    }</section>
"""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Carbon credit report — {_e(name)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def dumps(data: Mapping[str, Any]) -> str:
    """The report as indented JSON."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=jsonable)
