"""The Carbon accounts dashboard: what is the city emitting, and how are accounts labelled?

Emissions by area, industry and region over time; colour distribution and recent
changes; top emitters; loan eligibility; carbon benefit by district. Every SQL text is
in `dashboards.queries.SQL` and reads ClickHouse through the grafana-clickhouse-datasource
plugin.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, common, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.models.common import BarGaugeDisplayMode, StackingMode
from grafana_foundation_sdk.models.dashboard import DynamicConfigValue
from grafana_foundation_sdk.models.piechart import PieChartLabels, PieChartType

from dashboards._grafana import CLICKHOUSE, sql

__all__ = ["UID", "build"]

UID = "carbon-accounts-carbon"

#: the four label colours as Grafana colours
COLOURS = {
    "dark_green": "dark-green",
    "light_green": "light-green",
    "yellow": "yellow",
    "red": "red",
}


def _colour_overrides(panel: piechart.Panel | timeseries.Panel) -> piechart.Panel:
    for name, colour in COLOURS.items():
        panel = panel.override_by_name(
            name,
            [DynamicConfigValue("color", {"mode": "fixed", "fixedColor": colour})],
        )
    return panel


def _emissions(title: str, description: str, name: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit("tCO2e")
        .datasource(CLICKHOUSE)
        .with_target(sql(name, "timeseries"))
        .stacking(common.StackingConfig().mode(StackingMode.NORMAL))
        .fill_opacity(30)
        .height(9)
        .span(12)
    )


def _table(title: str, description: str, name: str, span: int = 12) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(CLICKHOUSE)
        .with_target(sql(name, "table"))
        .height(9)
        .span(span)
    )


def build() -> Dashboard:
    """The Carbon accounts dashboard builder."""
    return (
        Dashboard("Carbon Accounts — Carbon accounts")
        .uid(UID)
        .description("Emissions, colour labels, top emitters, green loans and carbon benefit.")
        .tags(["carbon-accounts", "carbon"])
        .timezone("Asia/Shanghai")
        .time("now-7d", "now")
        .refresh("5m")
        .with_row(Row("Emissions"))
        .with_panel(
            stat.Panel()
            .title("Emissions in range")
            .description("Total tCO2e of every account over the selected range.")
            .unit("tCO2e")
            .decimals(1)
            .datasource(CLICKHOUSE)
            .with_target(sql("emissions_total", "table"))
            .height(9)
            .span(6)
        )
        .with_panel(
            _emissions(
                "Emissions by energy type",
                "tCO2e per interval and energy type (electricity, natural gas, heat ...).",
                "emissions_by_energy_type",
            ).span(18)
        )
        .with_panel(
            _emissions(
                "Emissions by area",
                "tCO2e per interval and area: industry, energy, construction, transportation, "
                "agriculture and forestry, daily life.",
                "emissions_by_area",
            )
        )
        .with_panel(
            _emissions(
                "Emissions by industry",
                "tCO2e per interval and GB/T 4754 industry code.",
                "emissions_by_industry",
            )
        )
        .with_panel(
            _emissions(
                "Emissions by region", "tCO2e per interval and region.", "emissions_by_region"
            ).span(24)
        )
        .with_row(Row("Colour labels"))
        .with_panel(
            _colour_overrides(
                piechart.Panel()
                .title("Colour distribution")
                .description(
                    "Accounts per colour at the end of the range (each account's latest label)."
                )
                .datasource(CLICKHOUSE)
                .with_target(sql("colour_distribution", "table"))
                .pie_type(PieChartType.DONUT)
                .display_labels([PieChartLabels.VALUE, PieChartLabels.PERCENT])
                .reduce_options(common.ReduceDataOptions().values(True).calcs([]))
                .height(9)
                .span(8)
            )
        )
        .with_panel(
            _colour_overrides(
                timeseries.Panel()
                .title("Colour changes over time")
                .description("Label changes per interval, by new colour (or withdrawn).")
                .datasource(CLICKHOUSE)
                .with_target(sql("colour_changes_over_time", "timeseries"))
                .stacking(common.StackingConfig().mode(StackingMode.NORMAL))
                .height(9)
                .span(16)
            )
        )
        .with_panel(
            _table(
                "Recent label changes",
                "The latest colour changes in the range: old and new colour, k = intensity / "
                "benchmark, and why.",
                "recent_label_changes",
                span=24,
            )
        )
        .with_row(Row("Emitters and loans"))
        .with_panel(
            bargauge.Panel()
            .title("Top emitters")
            .description("The 20 accounts with the most tCO2e in the range.")
            .unit("tCO2e")
            .datasource(CLICKHOUSE)
            .with_target(sql("top_emitters", "table"))
            .display_mode(BarGaugeDisplayMode.GRADIENT)
            .reduce_options(common.ReduceDataOptions().values(True).fields("/^tco2e$/"))
            .height(12)
            .span(12)
        )
        .with_panel(
            _table(
                "Loan eligibility",
                "Enterprise accounts per current colour and green-loan product, with the "
                "product's terms from loan_products: credit-limit multiplier, rate cut, "
                "eligible.",
                "loan_eligibility",
            ).height(12)
        )
        .with_row(Row("Carbon benefit"))
        .with_panel(
            _table(
                "Carbon benefit by district",
                "Points earned, tCO2e avoided, residents and events per district in the range.",
                "benefit_by_district",
            )
        )
        .with_panel(
            timeseries.Panel()
            .title("Points earned by district")
            .description("Carbon-benefit points per interval and district.")
            .datasource(CLICKHOUSE)
            .with_target(sql("benefit_points_over_time", "timeseries"))
            .stacking(common.StackingConfig().mode(StackingMode.NORMAL))
            .height(9)
            .span(12)
        )
    )
