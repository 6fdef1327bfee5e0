"""Serve `/metrics` (prometheus-client) from every process the CLI starts.

Every command that runs for a while calls `serve_metrics(settings)` once (or adds the
`metrics_port_option` and passes its value). It imports every metrics module first, so
each process exports the whole vocabulary (families without samples too), plus
prometheus-client's default process collector (`process_cpu_seconds_total`,
`process_resident_memory_bytes`, ...).

The port is `[metrics] port` (default 9464); 0 or a busy port takes the next free one,
so the demo, a collector and a worker can run side by side on one machine.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIServer

import click
from prometheus_client import REGISTRY, start_http_server
from prometheus_client.process_collector import PROCESS_COLLECTOR

from schemas.settings import Settings

__all__ = [
    "METRICS_MODULES",
    "MetricsServer",
    "metrics_port_option",
    "register_all_metrics",
    "serve_metrics",
]

#: every module that defines metrics; imported so a scrape lists all of them
METRICS_MODULES: tuple[str, ...] = (
    "collectors.metrics",
    "streams.metrics",
    "sinks.metrics",
    "schemas.dlq",
)

#: how many ports after the configured one to try before asking the OS for any free one
_PORT_TRIES = 20

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class MetricsServer:
    """A running `/metrics` endpoint; `close()` stops it."""

    host: str
    port: int
    _server: WSGIServer

    @property
    def url(self) -> str:
        """The scrape URL."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()


def register_all_metrics() -> None:
    """Import every metrics module (registering its metrics) and the process collector."""
    for name in METRICS_MODULES:
        importlib.import_module(name)
    # CPU and memory: the default registry has the process collector unless someone
    # unregistered it; registering it again raises ValueError (duplicate), which is fine
    with contextlib.suppress(ValueError):
        REGISTRY.register(PROCESS_COLLECTOR)


def _start(host: str, port: int) -> WSGIServer:
    server, _thread = start_http_server(port, addr=host)
    return server


def serve_metrics(settings: Settings, port: int | None = None) -> MetricsServer | None:
    """Serve `/metrics` on `[metrics] host` and `port` (or the next free port).

    `port` overrides the settings (e.g. from `--metrics-port`); 0 means any free port.
    Returns None when `[metrics] enabled` is false.
    """
    m = settings.metrics
    if not m.enabled:
        return None
    register_all_metrics()
    wanted = m.port if port is None else port
    candidates = [wanted + i for i in range(_PORT_TRIES) if 0 < wanted + i < 65536]
    for candidate in candidates:
        try:
            server = _start(m.host, candidate)
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            continue
        return MetricsServer(m.host, server.server_port, server)
    server = _start(m.host, 0)  # 0 asked for, or the whole range busy: any free port
    return MetricsServer(m.host, server.server_port, server)


def metrics_port_option(fn: F) -> F:
    """Click option `--metrics-port` for commands that serve metrics (default: settings)."""
    return click.option(
        "--metrics-port",
        type=int,
        default=None,
        help="Port of /metrics (default: [metrics] port, 9464; busy or 0: the next free one).",
    )(fn)
