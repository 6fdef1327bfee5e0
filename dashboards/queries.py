"""Every query the dashboards run, in one place: ClickHouse SQL and PromQL.

ClickHouse panels use the grafana-clickhouse-datasource macros (`$__timeFilter(col)`,
`$__timeInterval(col)`, `$__fromTime`, `$__toTime`, `$__interval_s`); Prometheus panels
use Grafana's `$__rate_interval`. Tables are named through the constants below, so a
panel moves to a rollup (emissions by hour, day, month; current labels) by changing one
line here and regenerating (`make dashboards`).

Column names are the contract field names (schemas/contracts.py), as in the DDL.
"""

from __future__ import annotations

__all__ = [
    "ACCOUNTS",
    "BENEFIT",
    "EMISSIONS",
    "LABELS",
    "LOAN_TERMS",
    "PROMQL",
    "SQL",
]

#: emissions per account x energy type x window; FINAL keeps each window's latest revision
EMISSIONS = "emissions_15m"
#: colour changes, one row per change and revision
LABELS = "account_labels"
#: the accounts registry (area, industry, region, district)
ACCOUNTS = "accounts"
#: carbon-benefit points per event
BENEFIT = "benefit_points"

#: the current terms of every loan product per colour and area: a view over loan_products
#: FINAL (sinks/sql/ddl/080_loan_terms.sql) that the catalogue's loan-eligibility and
#: credit-report queries read too, so the panel and the queries apply the same rule
LOAN_TERMS = "loan_terms"


def _registry(columns: str) -> str:
    return f"(SELECT account_id, {columns} FROM {ACCOUNTS} FINAL)"


def _emissions_by(dimension: str) -> str:
    # one series per value of an account attribute, bucketed by Grafana's interval
    return f"""SELECT
    $__timeInterval(e.window_start) AS time,
    if(a.{dimension} = '', '(none)', a.{dimension}) AS {dimension},
    sum(e.tco2e) AS tco2e
FROM {EMISSIONS} AS e FINAL
INNER JOIN {_registry(dimension)} AS a ON a.account_id = e.account_id
WHERE $__timeFilter(e.window_start)
GROUP BY time, {dimension}
ORDER BY time, {dimension}"""


# the colour of each account at the end of the range: its latest label revision by then
_CURRENT_COLOUR = f"""SELECT
        account_id,
        argMax(area, revision) AS area,
        argMax(new_colour, revision) AS colour
    FROM {LABELS} FINAL
    WHERE ts <= $__toTime
    GROUP BY account_id"""


#: ClickHouse panels: name -> SQL with the plugin's macros
SQL: dict[str, str] = {
    "emissions_total": f"""SELECT sum(tco2e) AS tco2e
FROM {EMISSIONS} FINAL
WHERE $__timeFilter(window_start)""",
    "emissions_by_area": _emissions_by("area"),
    "emissions_by_industry": _emissions_by("industry_code"),
    "emissions_by_region": _emissions_by("region"),
    "emissions_by_energy_type": f"""SELECT
    $__timeInterval(window_start) AS time,
    energy_type,
    sum(tco2e) AS tco2e
FROM {EMISSIONS} FINAL
WHERE $__timeFilter(window_start)
GROUP BY time, energy_type
ORDER BY time, energy_type""",
    "colour_distribution": f"""SELECT colour, count() AS accounts
FROM ({_CURRENT_COLOUR})
WHERE colour IS NOT NULL
GROUP BY colour
ORDER BY colour""",
    "colour_changes_over_time": f"""SELECT
    $__timeInterval(ts) AS time,
    ifNull(new_colour, 'withdrawn') AS colour,
    count() AS changes
FROM {LABELS} FINAL
WHERE $__timeFilter(ts)
GROUP BY time, colour
ORDER BY time, colour""",
    "recent_label_changes": f"""SELECT
    l.ts AS time,
    l.account_id AS account_id,
    a.name AS name,
    l.area AS area,
    l.industry_code AS industry_code,
    l.region AS region,
    ifNull(l.old_colour, '') AS old_colour,
    ifNull(l.new_colour, 'withdrawn') AS new_colour,
    round(l.k, 3) AS k,
    l.reason AS reason,
    l.revision AS revision
FROM {LABELS} AS l FINAL
LEFT JOIN {_registry("name")} AS a ON a.account_id = l.account_id
WHERE $__timeFilter(l.ts)
ORDER BY l.ts DESC, l.account_id
LIMIT 100""",
    "top_emitters": f"""SELECT
    e.account_id AS account_id,
    any(a.name) AS name,
    any(a.area) AS area,
    any(a.industry_code) AS industry_code,
    sum(e.tco2e) AS tco2e
FROM {EMISSIONS} AS e FINAL
LEFT JOIN {_registry("name, area, industry_code")} AS a ON a.account_id = e.account_id
WHERE $__timeFilter(e.window_start)
GROUP BY e.account_id
ORDER BY tco2e DESC, account_id
LIMIT 20""",
    # enterprises per current colour and loan product, with that product's terms joined on
    # (colour, area) as the catalogue's loan-eligibility query does; accounts whose area
    # no product serves are counted under "(no product)"
    "loan_eligibility": f"""SELECT
    l.colour AS colour,
    ifNull(p.product_id, '(no product)') AS product_id,
    count() AS accounts,
    any(p.credit_multiplier) AS credit_limit_multiplier,
    any(p.rate_cut_bp) AS rate_cut_bp,
    ifNull(any(p.eligible), false) AS eligible
FROM ({_CURRENT_COLOUR}) AS l
LEFT JOIN {LOAN_TERMS} AS p ON p.colour = l.colour AND p.area = l.area
WHERE l.colour IS NOT NULL AND l.area != 'daily_life'
GROUP BY colour, product_id
ORDER BY product_id = '(no product)', product_id, credit_limit_multiplier DESC, colour
SETTINGS join_use_nulls = 1""",
    "benefit_by_district": f"""SELECT
    if(district = '', '(none)', district) AS district,
    sum(points) AS points,
    sum(reduction_g) / 1e6 AS reduction_tco2e,
    uniqExact(account_id) AS residents,
    count() AS events
FROM {BENEFIT} FINAL
WHERE $__timeFilter(ts)
GROUP BY district
ORDER BY points DESC, district""",
    "benefit_points_over_time": f"""SELECT
    $__timeInterval(ts) AS time,
    if(district = '', '(none)', district) AS district,
    sum(points) AS points
FROM {BENEFIT} FINAL
WHERE $__timeFilter(ts)
GROUP BY time, district
ORDER BY time, district""",
}

_JOB = 'job=~"carbon-accounts.*"'

#: Prometheus panels: name -> PromQL (Grafana substitutes $__rate_interval)
PROMQL: dict[str, str] = {
    # throughput per stage: device -> Kafka -> agents -> ClickHouse
    "readings_read": "sum by (protocol) "
    "(rate(carbon_accounts_collector_readings_read_total[$__rate_interval]))",
    "readings_published": "sum by (protocol) "
    "(rate(carbon_accounts_collector_readings_published_total[$__rate_interval]))",
    "events_in": "sum by (agent) (rate(carbon_accounts_stream_events_in_total[$__rate_interval]))",
    "events_out": "sum by (agent, topic) "
    "(rate(carbon_accounts_stream_events_out_total[$__rate_interval]))",
    "rows_stored": "sum by (table) (rate(carbon_accounts_sink_rows_total[$__rate_interval]))",
    # lag
    "lag_by_topic": "sum by (topic) (carbon_accounts_stream_consumer_lag)",
    "lag_by_partition": "max by (topic, partition) (carbon_accounts_stream_consumer_lag)",
    # dead letters
    "dlq_by_reason": "sum by (topic, reason) "
    "(rate(carbon_accounts_dlq_records_total[$__rate_interval]))",
    # collector health per device
    "seconds_since_last_read": "time() - max by (device, protocol) "
    "(carbon_accounts_collector_last_read_timestamp_seconds)",
    "read_errors": "sum by (device, kind) "
    "(rate(carbon_accounts_collector_read_errors_total[$__rate_interval]))",
    "readings_spooled": "sum by (device) "
    "(rate(carbon_accounts_collector_readings_spooled_total[$__rate_interval]))",
    # spool depth
    "spool_readings": "sum by (instance) (carbon_accounts_collector_spool_readings)",
    "spool_bytes": "sum by (instance) (carbon_accounts_collector_spool_bytes)",
    # latency
    "sink_batch_p99": "histogram_quantile(0.99, sum by (table, le) "
    "(rate(carbon_accounts_sink_batch_seconds_bucket[$__rate_interval])))",
    "sink_batch_p50": "histogram_quantile(0.5, sum by (table, le) "
    "(rate(carbon_accounts_sink_batch_seconds_bucket[$__rate_interval])))",
    "sink_batch_rows_avg": "sum by (table) "
    "(rate(carbon_accounts_sink_batch_rows_sum[$__rate_interval])) / sum by (table) "
    "(rate(carbon_accounts_sink_batch_rows_count[$__rate_interval]))",
    "sink_retries": "sum by (table) (rate(carbon_accounts_sink_retries_total[$__rate_interval]))",
    "agent_batch_p99": "histogram_quantile(0.99, sum by (agent, le) "
    "(rate(carbon_accounts_stream_batch_seconds_bucket[$__rate_interval])))",
    # what the stream changed
    "window_revisions": "sum by (energy_type, cause) "
    "(rate(carbon_accounts_stream_window_revisions_total[$__rate_interval]))",
    "duplicates": "sum by (energy_type) "
    "(rate(carbon_accounts_stream_duplicate_readings_total[$__rate_interval]))",
    "label_changes": "sum by (area, colour) "
    "(increase(carbon_accounts_stream_label_changes_total[$__rate_interval]))",
    # processes
    "targets_up": f"up{{{_JOB}}}",
    "process_cpu": f"rate(process_cpu_seconds_total{{{_JOB}}}[$__rate_interval])",
    "process_memory": f"process_resident_memory_bytes{{{_JOB}}}",
}
