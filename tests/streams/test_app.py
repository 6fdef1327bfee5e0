"""`create_app`: settings that reach Faust's configuration."""

from __future__ import annotations

from schemas.settings import load_settings
from streams.app import create_app


def test_group_timeouts_from_the_environment() -> None:
    # the environment names a user sets, through load_settings, into Faust's consumer conf
    settings = load_settings(
        environ={
            "CARBON_ACCOUNTS_STREAMS_SESSION_TIMEOUT_SECONDS": "7.5",
            "CARBON_ACCOUNTS_STREAMS_HEARTBEAT_INTERVAL_SECONDS": "2",
            "CARBON_ACCOUNTS_STREAMS_REBALANCE_TIMEOUT_SECONDS": "9",
        }
    )
    app = create_app(settings, "127.0.0.1:9", agents=[])
    assert app.conf.broker_session_timeout == 7.5
    assert app.conf.broker_heartbeat_interval == 2.0
    assert app.conf.broker_rebalance_timeout == 9.0


def test_group_timeouts_default_to_fausts() -> None:
    app = create_app(load_settings(environ={}), "127.0.0.1:9", agents=[])
    assert (app.conf.broker_session_timeout, app.conf.broker_heartbeat_interval) == (60.0, 3.0)
    assert app.conf.broker_rebalance_timeout == 60.0


def test_standby_replicas_off_unless_asked_for() -> None:
    # off by default (each standby reads its tables' changelogs as they are written)
    assert (
        create_app(load_settings(environ={}), "127.0.0.1:9", agents=[]).conf.table_standby_replicas
        == 0
    )
    settings = load_settings(environ={"CARBON_ACCOUNTS_STREAMS_STANDBY_REPLICAS": "1"})
    assert create_app(settings, "127.0.0.1:9", agents=[]).conf.table_standby_replicas == 1
