"""Prometheus metrics of the stream workers (names: carbon_accounts_stream_*)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCH_SECONDS",
    "BENEFIT_DUPLICATES",
    "BENEFIT_POINTS",
    "CONSUMER_LAG",
    "DUPLICATES",
    "EVENTS_IN",
    "EVENTS_OUT",
    "LABEL_CHANGES",
    "LABEL_EVALUATIONS",
    "SNAPSHOT_ACCOUNTS",
    "WINDOW_REVISIONS",
]

EVENTS_IN = Counter(
    "carbon_accounts_stream_events_in",
    "Events (readings, windows, benefit events ...) taken in by an agent.",
    ["agent"],
)
EVENTS_OUT = Counter(
    "carbon_accounts_stream_events_out", "Records an agent emitted, by topic.", ["agent", "topic"]
)
BATCH_SECONDS = Histogram(
    "carbon_accounts_stream_batch_seconds", "Time an agent spent on one message batch.", ["agent"]
)
CONSUMER_LAG = Gauge(
    "carbon_accounts_stream_consumer_lag",
    "Messages between the committed offset and the end of a partition.",
    ["topic", "partition"],
)
DUPLICATES = Counter(
    "carbon_accounts_stream_duplicate_readings",
    "Readings ignored as exact duplicates (same meter, time and value).",
    ["energy_type"],
)
SNAPSHOT_ACCOUNTS = Counter(
    "carbon_accounts_stream_snapshot_accounts",
    "Account states written to the changelog by a snapshot (one per changed account).",
    ["agent"],
)
WINDOW_REVISIONS = Counter(
    "carbon_accounts_stream_window_revisions",
    "Emission windows re-emitted with a higher revision (late data, factor revision).",
    ["energy_type", "cause"],
)
LABEL_CHANGES = Counter(
    "carbon_accounts_stream_label_changes",
    "Colour changes emitted, by area and new colour.",
    ["area", "colour"],
)
LABEL_EVALUATIONS = Counter(
    "carbon_accounts_stream_label_evaluations",
    "Accounts re-evaluated by the labelling agent, by trigger (only the affected accounts).",
    ["trigger"],
)
BENEFIT_POINTS = Counter(
    "carbon_accounts_stream_benefit_points",
    "Carbon-benefit points awarded, after daily caps, by behaviour.",
    ["behaviour"],
)
BENEFIT_DUPLICATES = Counter(
    "carbon_accounts_stream_benefit_duplicates",
    "Benefit events ignored because their event_id was already counted.",
    ["behaviour"],
)
