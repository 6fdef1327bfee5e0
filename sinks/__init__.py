"""Sinks: ClickHouse DDL, the writer and the query catalogue, on clickhouse-connect's Client."""
