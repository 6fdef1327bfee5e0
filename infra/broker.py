"""The embedded Kafka-compatible broker: noida-db's binary, `--only kafka`, on 127.0.0.1.

For one machine (development, demos, CI) only: one broker, replication factor 1. At
scale, set `KAFKA_BOOTSTRAP_SERVERS` to a real Kafka cluster and this is not started.

The broker is a child process: it is stopped by `stop()`, by leaving the context
manager, at interpreter exit, and (Linux) by the kernel if this process dies, so a
crashed test or a Ctrl-C never leaves one behind.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path
from typing import Any, Self

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

__all__ = [
    "COMPACTION",
    "BrokerError",
    "EmbeddedBroker",
    "ensure_topics",
    "free_port",
    "wait_ready",
]

#: topic configs of every compacted topic and changelog we create. A broker compacts
#: only closed segments; with Kafka's 1 GiB default a changelog's segment never closes
#: here, and the embedded broker (which rewrites all it holds about once a second)
#: would keep every state ever written. Small segments keep one state per key.
COMPACTION = {"segment.bytes": str(8 << 20), "segment.ms": str(10 * 60 * 1000)}


class BrokerError(RuntimeError):
    """The embedded broker could not start or did not become ready."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary() -> Path:
    path = Path(str(files("noida_db").joinpath("noida-db")))
    if not path.is_file():
        raise BrokerError(f"noida-db binary not found at {path}; is the noida-db wheel installed?")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def wait_ready(bootstrap: str, timeout: float = 30.0, **options: Any) -> None:
    """Wait until a Kafka admin client can connect and list topics."""
    deadline = time.monotonic() + timeout
    # connection refusals while the broker boots are expected: keep aiokafka quiet
    log = logging.getLogger("aiokafka")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        await _poll_ready(bootstrap, deadline, options)
    finally:
        log.setLevel(level)


async def _poll_ready(bootstrap: str, deadline: float, options: dict[str, Any]) -> None:
    last: Exception | None = None
    timeout = deadline - time.monotonic()
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **options)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last = exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        await asyncio.sleep(0.2)
    raise BrokerError(f"Kafka at {bootstrap} not ready after {timeout:.0f}s: {last}")


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[tuple[str, int, bool]],
    replication_factor: int = 1,
    **options: Any,
) -> list[str]:
    """Create the topics `(name, partitions, compacted)` that do not exist; returns those created.

    Existing topics are left as they are (their partition count is not changed).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=replication_factor,
                topic_configs={"cleanup.policy": "compact", **COMPACTION} if compacted else {},
            )
            for name, partitions, compacted in topics
            if name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        return [t.name for t in new]
    finally:
        await admin.close()


class EmbeddedBroker:
    """noida-db's Kafka on 127.0.0.1, data in `data_dir`.

    >>> with EmbeddedBroker("var/kafka") as broker:
    ...     broker.bootstrap  # "127.0.0.1:PORT"
    """

    def __init__(
        self, data_dir: str | Path, port: int = 0, log_file: str | Path | None = None
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.log_file = Path(log_file) if log_file else self.data_dir.parent / "broker.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The bootstrap address for clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> Self:
        """Start the broker and wait, through the admin client, until it is ready."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        cmd = [
            str(_binary()),
            "start",
            "--only",
            "kafka",
            "--host",
            "127.0.0.1",
            "--kafka-port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        self._proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        log.close()
        atexit.register(self.stop)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        # run the async check on a thread of its own: works whether or not a loop is running
        error: list[BaseException] = []

        def check() -> None:
            try:
                asyncio.run(wait_ready(self.bootstrap, timeout))
            except BaseException as exc:
                error.append(exc)

        thread = threading.Thread(target=check, name="broker-ready")
        thread.start()
        while thread.is_alive():
            thread.join(0.1)
            if self._proc is not None and self._proc.poll() is not None:
                raise BrokerError(
                    f"embedded broker exited with code {self._proc.returncode}; see {self.log_file}"
                )
        if error:
            self.stop()
            raise BrokerError(f"{error[0]}; see {self.log_file}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after `timeout` seconds. Data stays on disk."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
