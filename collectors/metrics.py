"""Prometheus metrics of the collectors (names: carbon_accounts_collector_*)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = [
    "LAST_READ",
    "READINGS_PUBLISHED",
    "READINGS_READ",
    "READINGS_SPOOLED",
    "READ_ERRORS",
    "SPOOL_BYTES",
    "SPOOL_DROPPED",
    "SPOOL_READINGS",
]

_DEVICE = ["device", "protocol"]
READINGS_READ = Counter(
    "carbon_accounts_collector_readings_read", "Readings read from devices.", _DEVICE
)
READINGS_PUBLISHED = Counter(
    "carbon_accounts_collector_readings_published", "Readings published to Kafka.", _DEVICE
)
READINGS_SPOOLED = Counter(
    "carbon_accounts_collector_readings_spooled",
    "Readings written to the disk spool while Kafka was unreachable.",
    _DEVICE,
)
READ_ERRORS = Counter(
    "carbon_accounts_collector_read_errors",
    "Failed reads by kind (timeout, connection, exception_code, bad_value, ...).",
    [*_DEVICE, "kind"],
)
LAST_READ = Gauge(
    "carbon_accounts_collector_last_read_timestamp_seconds",
    "Unix time of the last successful read of a device.",
    _DEVICE,
)
SPOOL_BYTES = Gauge("carbon_accounts_collector_spool_bytes", "Bytes waiting in the disk spool.")
SPOOL_READINGS = Gauge(
    "carbon_accounts_collector_spool_readings", "Readings waiting in the disk spool."
)
SPOOL_DROPPED = Counter(
    "carbon_accounts_collector_spool_dropped_readings",
    "Readings dropped because the disk spool reached its bound (spool_max_mb).",
)
