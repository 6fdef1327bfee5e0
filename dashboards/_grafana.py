"""Small helpers over grafana-foundation-sdk: datasources and the ClickHouse query type.

The SDK has typed queries for Prometheus but none for the grafana-clickhouse-datasource
plugin, so `ClickHouseQuery` is that plugin's SQL query as its editor saves it
(editorType sql, queryType, format, rawSql).
"""

from __future__ import annotations

from typing import Literal

from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from dashboards.queries import PROMQL, SQL

#: datasource uids; the provisioning files create datasources with these uids
PROMETHEUS_UID = "prometheus"
CLICKHOUSE_UID = "clickhouse"
CLICKHOUSE_PLUGIN = "grafana-clickhouse-datasource"

PROMETHEUS = DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
CLICKHOUSE = DataSourceRef(type_val=CLICKHOUSE_PLUGIN, uid=CLICKHOUSE_UID)

Shape = Literal["timeseries", "table"]
# the plugin's format codes (grafana-plugin-sdk-go sqlutil): 0 time series, 1 table
_FORMAT = {"timeseries": 0, "table": 1}
_QUERY_TYPE = {"timeseries": "timeSeries", "table": "table"}


class ClickHouseQuery(cogvariants.Dataquery):
    """A raw-SQL query of the ClickHouse plugin; `name` is its key in `queries.SQL`."""

    def __init__(self, name: str, shape: Shape, ref_id: str = "A") -> None:
        self.name = name
        self.shape = shape
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        """The target as Grafana stores it."""
        return {
            "datasource": CLICKHOUSE.to_json(),
            "editorType": "sql",
            "format": _FORMAT[self.shape],
            "queryType": _QUERY_TYPE[self.shape],
            "rawSql": SQL[self.name],
            "refId": self.ref_id,
        }


class ClickHouseQueryBuilder(cogbuilder.Builder[ClickHouseQuery]):
    """Builder for `ClickHouseQuery`, to pass to a panel's `with_target`."""

    def __init__(self, name: str, shape: Shape, ref_id: str = "A") -> None:
        self._query = ClickHouseQuery(name, shape, ref_id)

    def build(self) -> ClickHouseQuery:
        """The query."""
        return self._query


def sql(name: str, shape: Shape = "table", ref_id: str = "A") -> ClickHouseQueryBuilder:
    """A ClickHouse target running `queries.SQL[name]`."""
    if name not in SQL:
        raise KeyError(f"no SQL named {name!r} in dashboards/queries.py")
    return ClickHouseQueryBuilder(name, shape, ref_id)


def promql(name: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    """A Prometheus target running `queries.PROMQL[name]`, with a legend format."""
    return (
        prometheus.Dataquery()
        .expr(PROMQL[name])
        .legend_format(legend)
        .ref_id(ref_id)
        .datasource(PROMETHEUS)
    )
