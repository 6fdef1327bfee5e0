"""Prometheus metrics of the ClickHouse sink (names: carbon_accounts_sink_*)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["BATCH_ROWS", "BATCH_SECONDS", "PAUSED", "RETRIES", "ROWS"]

ROWS = Counter("carbon_accounts_sink_rows", "Rows stored in ClickHouse, by table.", ["table"])
BATCH_SECONDS = Histogram(
    "carbon_accounts_sink_batch_seconds", "Time to store one batch, by table.", ["table"]
)
BATCH_ROWS = Histogram(
    "carbon_accounts_sink_batch_rows",
    "Rows per stored batch, by table.",
    ["table"],
    buckets=(10, 100, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000),
)
RETRIES = Counter(
    "carbon_accounts_sink_retries", "Batch writes retried after a ClickHouse error.", ["table"]
)
PAUSED = Gauge(
    "carbon_accounts_sink_paused",
    "1 while the sink has paused consuming because ClickHouse does not store (backpressure).",
)
