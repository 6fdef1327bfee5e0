"""The Faust app: one per worker process, built from settings.

Agents live in `streams/agents/<name>.py`, each with `register(app, settings)`; the
rules they apply are pure functions in `streams/rules/`. `create_app` registers the
agents named in `AGENT_MODULES` (all by default).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import faust

from schemas.settings import Settings

__all__ = ["AGENT_MODULES", "create_app"]

#: agent modules under streams/agents/, in registration order
AGENT_MODULES: tuple[str, ...] = ("accounting", "labelling", "benefit")


def create_app(
    settings: Settings,
    bootstrap: str,
    *,
    agents: Sequence[str] | None = None,
    web: bool = False,
    **overrides: object,
) -> faust.App:
    """A Faust app on `bootstrap` with the given agents (default: all of AGENT_MODULES)."""
    kafka = settings.kafka
    options: dict[str, object] = {
        "broker": f"kafka://{bootstrap}",
        "store": "memory://",  # tables recover from their changelog topics
        "topic_partitions": kafka.partitions,
        "topic_replication_factor": kafka.replication_factor,
        "producer_acks": -1,
        "web_enabled": web,
        "web_port": settings.streams.web_port,
        "web_bind": "127.0.0.1",
        "datadir": str(settings.path("faust")),
        # agents emit batches (Arrow intervals, table state per account): with aiokafka's
        # 16 KB default a full batch waits for the broker's ack before the next send
        "producer_max_batch_size": 1 << 20,
        "producer_max_request_size": 4 << 20,
        "producer_linger": 0.005,
        "producer_compression_type": kafka.producer_options()["compression_type"],
        # how soon a crashed worker's partitions move to the others
        "broker_session_timeout": settings.streams.session_timeout_seconds,
        "broker_heartbeat_interval": settings.streams.heartbeat_interval_seconds,
        "broker_rebalance_timeout": settings.streams.rebalance_timeout_seconds,
        "table_standby_replicas": settings.streams.standby_replicas,
    }
    options.update(overrides)
    app = faust.App(settings.streams.app_id, **options)
    for name in AGENT_MODULES if agents is None else agents:
        module = importlib.import_module(f"streams.agents.{name}")
        module.register(app, settings)
    return app
