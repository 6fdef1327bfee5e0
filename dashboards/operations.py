"""The Operations dashboard: is the pipeline keeping up, and where does it hurt?

Rows follow a reading's path: throughput per stage, consumer lag, dead letters,
collector health per device and spool depth, sink and agent latency, processes.
Every expression is in `dashboards.queries.PROMQL`.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, stat, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.models.common import StackingMode

from dashboards._grafana import PROMETHEUS, promql

__all__ = ["UID", "build"]

UID = "carbon-accounts-operations"


def _series(
    title: str, description: str, unit: str, *targets: tuple[str, str], stacked: bool = False
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(PROMETHEUS)
        .height(8)
        .span(12)
    )
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(StackingMode.NORMAL))
    for i, (name, legend) in enumerate(targets):
        panel = panel.with_target(promql(name, legend, ref_id=chr(ord("A") + i)))
    return panel


def build() -> Dashboard:
    """The Operations dashboard builder."""
    return (
        Dashboard("Carbon Accounts — Operations")
        .uid(UID)
        .description("Throughput, lag, dead letters, collectors, spool and latency.")
        .tags(["carbon-accounts", "operations"])
        .timezone("browser")
        .time("now-1h", "now")
        .refresh("30s")
        .with_row(Row("Throughput per stage"))
        .with_panel(
            _series(
                "Readings read and published",
                "Readings/s read from devices and published to meter.readings, by protocol. "
                "Read above published means readings are going to the spool.",
                "reqps",
                ("readings_read", "read {{protocol}}"),
                ("readings_published", "published {{protocol}}"),
            )
        )
        .with_panel(
            _series(
                "Agents: events in and out",
                "Events/s each Faust agent takes in, and records/s it emits per topic.",
                "reqps",
                ("events_in", "in {{agent}}"),
                ("events_out", "out {{agent}} → {{topic}}"),
            )
        )
        .with_panel(
            _series(
                "Rows stored in ClickHouse",
                "Rows/s the sink stores, by table.",
                "reqps",
                ("rows_stored", "{{table}}"),
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "Window revisions, duplicates, label changes",
                "Late data revising windows, exact duplicate readings ignored, and colour "
                "changes by area and new colour.",
                "short",
                ("window_revisions", "revision {{energy_type}} ({{cause}})"),
                ("duplicates", "duplicate {{energy_type}}"),
                ("label_changes", "→ {{colour}} ({{area}})"),
            )
        )
        .with_row(Row("Lag and dead letters"))
        .with_panel(
            _series(
                "Consumer lag by topic",
                "Messages between committed offsets and the end of each topic. Growing "
                "means the workers fall behind: add workers (up to the partition count).",
                "short",
                ("lag_by_topic", "{{topic}}"),
            )
        )
        .with_panel(
            _series(
                "Consumer lag by partition",
                "A single hot partition (one busy account key) shows here first.",
                "short",
                ("lag_by_partition", "{{topic}}[{{partition}}]"),
            )
        )
        .with_panel(
            _series(
                "Dead letters by reason",
                "Records/s sent to a .dlq topic, by source topic and reason code "
                "(schemas/errors.py).",
                "reqps",
                ("dlq_by_reason", "{{topic}}: {{reason}}"),
                stacked=True,
            ).span(24)
        )
        .with_row(Row("Collectors"))
        .with_panel(
            _series(
                "Seconds since last read, per device",
                "Time since each device last answered. A device above its poll interval "
                "is not being read.",
                "s",
                ("seconds_since_last_read", "{{device}} ({{protocol}})"),
            )
        )
        .with_panel(
            _series(
                "Read errors and spooled readings, per device",
                "Failed reads/s by device and kind, and readings/s going to the spool.",
                "reqps",
                ("read_errors", "{{device}}: {{kind}}"),
                ("readings_spooled", "spooled {{device}}"),
            )
        )
        .with_panel(
            _series(
                "Spool depth (readings)",
                "Readings waiting in the disk spool while Kafka is unreachable.",
                "short",
                ("spool_readings", "{{instance}}"),
            )
        )
        .with_panel(
            _series(
                "Spool depth (bytes)",
                "Bytes on disk in the spool; its limit is collectors.spool_max_mb.",
                "bytes",
                ("spool_bytes", "{{instance}}"),
            )
        )
        .with_row(Row("Latency"))
        .with_panel(
            _series(
                "Sink batch latency",
                "Time to store one batch in ClickHouse, p50 and p99, by table.",
                "s",
                ("sink_batch_p50", "p50 {{table}}"),
                ("sink_batch_p99", "p99 {{table}}"),
            )
        )
        .with_panel(
            _series(
                "Sink batch size and retries",
                "Average rows per batch, and batch writes/s retried after a ClickHouse error.",
                "short",
                ("sink_batch_rows_avg", "rows/batch {{table}}"),
                ("sink_retries", "retries/s {{table}}"),
            )
        )
        .with_panel(
            _series(
                "Agent batch latency (p99)",
                "Time an agent spends on one message batch.",
                "s",
                ("agent_batch_p99", "{{agent}}"),
            )
        )
        .with_panel(
            stat.Panel()
            .title("Processes up")
            .description("Scrape targets of the carbon-accounts jobs that answer (1) or not (0).")
            .datasource(PROMETHEUS)
            .with_target(promql("targets_up", "{{job}} {{instance}}"))
            .height(8)
            .span(12)
        )
        .with_row(Row("Processes"))
        .with_panel(
            _series(
                "CPU",
                "CPU seconds per second of each process (1 = one core).",
                "percentunit",
                ("process_cpu", "{{job}} {{instance}}"),
            )
        )
        .with_panel(
            _series(
                "Memory",
                "Resident memory of each process.",
                "bytes",
                ("process_memory", "{{job}} {{instance}}"),
            )
        )
    )
