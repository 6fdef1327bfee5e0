"""A small fixed data set, loaded through the Writer, with its answers computed by hand.

Calendar: Asia/Shanghai (UTC+8). `AS_OF` = 2026-03-01T00:00+08:00 = 2026-02-28T16:00Z, so
the trailing 12 months are [2025-02-28T16:00Z, 2026-02-28T16:00Z).

Emissions (tCO2e, final revision; 'rev a>b>c' = the revisions sent):
- E1 electricity 2026-01-15T02:00Z (local Jan 15): revs 1.0 > 1.5 > 2.0, final 2.0
- E1 electricity 2026-01-31T16:15Z (local Feb 1 00:15, UTC still January): 3.0
- E1 natural_gas 2026-02-10T00:00Z: 1.0                       -> E1 12 months = 6.0
- E2 electricity 2026-01-20T00:00Z: 4.0; 2026-02-20T00:00Z: 4.0 -> E2 = 8.0
- E3 electricity 2026-02-05T00:00Z: revs 1.0 > 1.5 -> 1.5; 2025-01-10: 100.0 (older than
  12 months)                                                   -> E3 = 1.5
Denominators (10k yuan, local months Jan and Feb 2026): E1 5+5=10, E2 4+4=8, E3 5+5=10.
Intensity: E1 0.6, E2 1.0, E3 0.15; benchmark 0.5 (2025 value; 2024's 0.6 is older)
K: E1 1.2, E2 2.0, E3 0.3.
Labels: E1 yellow (2026-01-01) -> light_green (2026-02-15); E2 yellow (2026-01-01);
E3 light_green (2026-01-01) -> dark_green (2026-02-20) -> red (2026-03-10, after AS_OF).
Benefit points: P1 (kecheng) bus 10 pts local Jan 5, bus 10 pts local Feb 1 (UTC Jan 31),
cycling 3 km 5 pts Feb 2, and the Jan 5 event sent twice; P2 (kecheng) subway 8 pts Jan 10;
P3 (qujiang) bus 10 pts Jan 10.
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.contracts import (
    Account,
    AccountLabel,
    Benchmark,
    BenefitPoints,
    Contract,
    Denominator,
    EmissionWindow,
)
from sinks.writer import Writer

__all__ = ["AS_OF", "load", "records", "window"]

AS_OF = "2026-03-01T00:00:00+08:00"
_TS_MS = 1_767_225_600_000  # Kafka timestamp of the registry records: 2026-01-01T00:00Z


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def window(
    account: str, energy: str, start: str, tco2e: float, revision: int, consumption: float = 0.0
) -> EmissionWindow:
    """An emission window of 15 minutes starting at `start` (UTC)."""
    s = _t(start)
    unit = {"electricity": "kWh", "natural_gas": "Nm3"}[energy]
    return EmissionWindow(
        account_id=account,
        energy_type=energy,
        window_start=s,
        window_end=datetime.fromtimestamp(s.timestamp() + 900, UTC),
        consumption=consumption or tco2e * 1000,
        unit=unit,
        tco2e=tco2e,
        factor_id="grid-east_china" if energy == "electricity" else "ng-default",
        factor_version="2023",
        factor_value=0.00055,
        factor_unit=f"tCO2e/{unit}",
        revision=revision,
    )


def _account(aid: str, name: str, area: str, code: str, district: str) -> Account:
    unit = "10k_yuan" if area == "industry" else ""
    return Account(
        account_id=aid,
        area=area,
        name=name,
        region="east_china",
        district=district,
        industry_code=code,
        denominator_unit=unit,
    )


def _den(aid: str, start: str, end: str, value: float) -> Denominator:
    return Denominator(
        account_id=aid, period_start=_t(start), period_end=_t(end), value=value, unit="10k_yuan"
    )


def _label(aid: str, old: str | None, new: str | None, k: float, rev: int, ts: str) -> AccountLabel:
    return AccountLabel(
        account_id=aid,
        area="industry",
        industry_code="3011",
        region="east_china",
        old_colour=old,
        new_colour=new,
        k=k,
        intensity=k * 0.5,
        benchmark=0.5,
        benchmark_version="2025",
        period_start=_t("2025-01-01T00:00:00+08:00"),
        period_end=_t(ts),
        reason="first_evaluation" if old is None else "intensity_change",
        revision=rev,
        ts=_t(ts),
    )


def _points(
    eid: str, aid: str, behaviour: str, qty: float, red: float, pts: float, ts: str, district: str
) -> BenefitPoints:
    unit = {"bus_trip": "trip", "subway_km": "km", "cycling_km": "km"}[behaviour]
    return BenefitPoints(
        event_id=eid,
        account_id=aid,
        behaviour=behaviour,
        quantity=qty,
        unit=unit,
        reduction_g=red,
        points=pts,
        capped=False,
        ts=_t(ts),
        district=district,
    )


JAN = ("2025-12-31T16:00:00+00:00", "2026-01-31T16:00:00+00:00")
FEB = ("2026-01-31T16:00:00+00:00", "2026-02-28T16:00:00+00:00")


def records() -> list[tuple[str, Contract]]:
    """(standard topic, record) of the data set, in the order they are sent."""
    out: list[tuple[str, Contract]] = []
    for a in (
        _account("E1", "Alpha Cement", "industry", "3011", "kecheng"),
        _account("E2", "Beta Cement", "industry", "3011", "kecheng"),
        _account("E3", "Gamma Cement", "industry", "3011", "qujiang"),
        _account("P1", "Person 1", "daily_life", "", "kecheng"),
        _account("P2", "Person 2", "daily_life", "", "kecheng"),
        _account("P3", "Person 3", "daily_life", "", "qujiang"),
    ):
        out.append(("accounts.registry", a))
    for b in (
        Benchmark(
            area="industry",
            industry_code="3011",
            region="east_china",
            period_start=_t("2024-01-01T00:00:00+08:00"),
            period_end=_t("2025-01-01T00:00:00+08:00"),
            value=0.6,
            unit="tCO2e/10k_yuan",
            source="test",
            version="2024",
        ),
        Benchmark(
            area="industry",
            industry_code="3011",
            region="east_china",
            period_start=_t("2025-01-01T00:00:00+08:00"),
            period_end=_t("2026-01-01T00:00:00+08:00"),
            value=0.5,
            unit="tCO2e/10k_yuan",
            source="test",
            version="2025",
        ),
    ):
        out.append(("benchmarks", b))
    for aid, v in (("E1", 5.0), ("E2", 4.0), ("E3", 5.0)):
        out.append(("accounts.denominators", _den(aid, *JAN, v)))
        out.append(("accounts.denominators", _den(aid, *FEB, v)))
    for w in (
        window("E1", "electricity", "2026-01-15T02:00:00+00:00", 1.0, 0, 4000.0),
        window("E3", "electricity", "2026-02-05T00:00:00+00:00", 1.0, 0),
        window("E1", "electricity", "2026-01-15T02:00:00+00:00", 1.5, 1, 4000.0),
        window("E1", "electricity", "2026-01-31T16:15:00+00:00", 3.0, 0),
        window("E1", "natural_gas", "2026-02-10T00:00:00+00:00", 1.0, 0, 500.0),
        window("E2", "electricity", "2026-01-20T00:00:00+00:00", 4.0, 0),
        window("E2", "electricity", "2026-02-20T00:00:00+00:00", 4.0, 0),
        window("E1", "electricity", "2026-01-15T02:00:00+00:00", 2.0, 2, 4000.0),
        window("E3", "electricity", "2026-02-05T00:00:00+00:00", 1.5, 1),
        window("E3", "electricity", "2025-01-10T00:00:00+00:00", 100.0, 0),
    ):
        out.append(("emissions.windows", w))
    for lab in (
        _label("E1", None, "yellow", 1.5, 1, "2026-01-01T00:00:00+08:00"),
        _label("E1", "yellow", "light_green", 1.2, 2, "2026-02-15T00:00:00+08:00"),
        _label("E2", None, "yellow", 2.0, 1, "2026-01-01T00:00:00+08:00"),
        _label("E3", None, "light_green", 1.0, 1, "2026-01-01T00:00:00+08:00"),
        _label("E3", "light_green", "dark_green", 0.3, 2, "2026-02-20T00:00:00+08:00"),
        _label("E3", "dark_green", "red", 2.5, 3, "2026-03-10T00:00:00+08:00"),
    ):
        out.append(("accounts.labels", lab))
    b1 = _points("b1", "P1", "bus_trip", 1, 212.5, 10, "2026-01-05T09:00:00+08:00", "kecheng")
    for p in (
        b1,
        _points("b2", "P1", "bus_trip", 1, 212.5, 10, "2026-02-01T01:00:00+08:00", "kecheng"),
        _points("b3", "P1", "cycling_km", 3, 279.9, 5, "2026-02-02T08:00:00+08:00", "kecheng"),
        b1,
        _points("b4", "P2", "subway_km", 10, 784.0, 8, "2026-01-10T08:00:00+08:00", "kecheng"),
        _points("b5", "P3", "bus_trip", 1, 212.5, 10, "2026-01-10T08:00:00+08:00", "qujiang"),
    ):
        out.append(("benefit.points", p))
    return out


def load(writer: Writer) -> int:
    """Write the data set through `writer` (partition 0, offsets in send order); returns rows."""
    for offset, (topic, record) in enumerate(records()):
        writer.add(topic, 0, offset, record.dumps(), _TS_MS)
    n = writer.pending_rows
    writer.store_pending()
    return n
