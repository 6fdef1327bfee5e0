"""The Kafka topics: names, partition counts, compaction, and their dead-letter twins.

Every topic is keyed by `account_id` (registry topics by their natural key), so one
worker owns an account's meters, windows and label. Partition counts bound how many
workers share the work: create every topic before anything uses it (brokers that
auto-create make 1 partition).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DLQ_SUFFIX", "TOPICS", "Topic", "all_topics", "dlq"]

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Topic:
    name: str
    compacted: bool = False
    doc: str = ""


TOPICS: tuple[Topic, ...] = (
    Topic("meter.readings", doc="meter readings: Arrow batches per account, or one JSON reading"),
    Topic("energy.intervals", doc="one meter's consumption over [start, end), canonical units"),
    Topic("emissions.windows", doc="account x energy type x 15-minute window, tCO2e, revision"),
    Topic("accounts.labels", doc="an account's colour changed"),
    Topic("benefit.events", doc="a resident's low-carbon behaviour"),
    Topic("benefit.points", doc="the points a benefit event earned"),
    Topic("accounts.registry", compacted=True, doc="accounts, keyed by account_id"),
    Topic("accounts.denominators", compacted=True, doc="intensity denominators per period"),
    Topic("benchmarks", compacted=True, doc="industry benchmarks per period"),
    Topic("factors", compacted=True, doc="emission factors, versioned"),
)


def dlq(name: str) -> str:
    """The dead-letter topic of a topic."""
    return name + DLQ_SUFFIX


def all_topics() -> list[Topic]:
    """Every topic, each followed by its `.dlq` (DLQs are never compacted)."""
    out: list[Topic] = []
    for topic in TOPICS:
        out.append(topic)
        out.append(Topic(dlq(topic.name), doc=f"rejected records of {topic.name}, with reason"))
    return out
