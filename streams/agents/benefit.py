"""The carbon-benefit agent: `benefit.events` in, `benefit.points` out.

Per person (the topics are keyed by account_id) it keeps the last `benefit.keep_days`
local days: the event ids seen (duplicates count once) and the points earned per
behaviour (daily caps). An event older than the days kept goes to the DLQ as too_late,
so a replay can never count it twice; bad events go there with their reason.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

import faust

from infra.broker import COMPACTION
from schemas.codec import decode_json
from schemas.contracts import BenefitEvent, BenefitPoints
from schemas.dlq import dlq_headers, dlq_topic
from schemas.errors import ContractError, ReasonCode
from schemas.settings import Settings
from streams.metrics import BENEFIT_DUPLICATES, BENEFIT_POINTS, EVENTS_IN, EVENTS_OUT
from streams.registry import load_benefit_table
from streams.rules.benefit import BenefitTable, DayLedger, check_event, local_day, score

__all__ = ["TOPICS", "PointsBook", "register"]

AGENT = "benefit"
TOPICS = ("benefit.events", "benefit.points")


class PointsBook:
    """Each person's recent local days over a mutable mapping (a Faust table in the agent).

    `people[account_id]` = `{day: DayLedger JSON}` for the last `keep_days` days seen.
    """

    def __init__(
        self,
        table: BenefitTable,
        timezone: str,
        keep_days: int,
        people: MutableMapping[str, Any],
    ) -> None:
        self.table = table
        self.timezone = timezone
        self.keep_days = keep_days
        self.people = people

    def on_event(self, event: BenefitEvent) -> BenefitPoints | None:
        """Points of one event (None: a duplicate); ContractError for a bad or too-late event."""
        check_event(event, self.table)  # bad events fail before touching the state
        days = dict(self.people.get(event.account_id) or {})
        day = local_day(event.ts, self.timezone)
        if day not in days and days:
            kept = sorted(days)
            if len(kept) >= self.keep_days and day < kept[0]:
                raise ContractError(
                    ReasonCode.TOO_LATE,
                    f"{day} is older than the {self.keep_days} days kept for {event.account_id}",
                    "ts",
                )
        ledger = DayLedger.from_json(days.get(day))
        points = score(event, self.table, ledger)
        if points is None:
            BENEFIT_DUPLICATES.labels(behaviour=event.behaviour).inc()
            return None
        days[day] = ledger.as_json()
        for old in sorted(days)[: max(0, len(days) - self.keep_days)]:
            del days[old]
        self.people[event.account_id] = days
        BENEFIT_POINTS.labels(behaviour=points.behaviour).inc(points.points)
        return points


def register(
    app: faust.App, settings: Settings, *, topic: Callable[[str], str] = lambda name: name
) -> None:
    """Add the benefit agent and its table to `app` (`topic` maps topic names, for tests)."""
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    events_t, points_t = (topic(n) for n in TOPICS)
    points_topic = app.topic(points_t, **raw)
    dlq = app.topic(dlq_topic(events_t), **raw)
    book = PointsBook(
        load_benefit_table(settings),
        settings.streams.timezone,
        settings.benefit.keep_days,
        app.Table(
            "benefit-days", partitions=settings.kafka.partitions, extra_topic_configs=COMPACTION
        ),
    )

    @app.agent(app.topic(events_t, **raw), name="benefit")
    async def benefit(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            EVENTS_IN.labels(agent=AGENT).inc()
            try:
                if msg.value is None:
                    raise ContractError(ReasonCode.MISSING_FIELD, "empty message")
                points = book.on_event(decode_json(BenefitEvent, msg.value))
            except ContractError as exc:
                headers = dlq_headers(
                    exc, topic=events_t, partition=msg.partition, offset=msg.offset
                )
                await dlq.send(key=msg.key, value=msg.value, headers=headers)
                continue
            if points is not None:
                await points_topic.send(key=points.account_id.encode(), value=points.dumps())
                EVENTS_OUT.labels(agent=AGENT, topic=points_t).inc()
