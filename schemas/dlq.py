"""The dead-letter contract: every topic X has X.dlq; a rejected record goes there
verbatim, with its reason code in the headers, and one counter counts it.

The counter lives here, beside the reason codes, because collectors, streams and
sinks all reject records and may run in one process (the demo).
"""

from __future__ import annotations

from prometheus_client import Counter

from schemas.errors import ContractError
from schemas.topics import dlq

__all__ = ["DLQ_RECORDS", "dlq_headers", "dlq_topic"]

DLQ_RECORDS = Counter(
    "carbon_accounts_dlq_records",
    "Records sent to a dead-letter topic, by source topic and reason code.",
    ["topic", "reason"],
)

dlq_topic = dlq


def dlq_headers(
    error: ContractError, *, topic: str, partition: int | None = None, offset: int | None = None
) -> list[tuple[str, bytes]]:
    """Kafka headers of a DLQ record (reason, detail, field, source) and count it.

    Call once per rejected record: it increments `carbon_accounts_dlq_records_total`.
    """
    DLQ_RECORDS.labels(topic=topic, reason=error.reason.value).inc()
    headers = [
        ("reason", error.reason.value.encode()),
        ("detail", error.detail.encode()),
        ("source-topic", topic.encode()),
    ]
    if error.field:
        headers.append(("field", error.field.encode()))
    if partition is not None:
        headers.append(("source-partition", str(partition).encode()))
    if offset is not None:
        headers.append(("source-offset", str(offset).encode()))
    return headers
