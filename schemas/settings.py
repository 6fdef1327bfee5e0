"""Settings: one typed place, from an optional TOML file and environment variables.

Precedence (highest first): environment, TOML file, defaults. The TOML file is
`--config FILE`, else `$CARBON_ACCOUNTS_CONFIG`, else `./carbon-accounts.toml` if it
exists. Each setting `section.name` is `[section] name = ...` in TOML and
`CARBON_ACCOUNTS_SECTION_NAME` in the environment; the two everyone knows also work
bare: `KAFKA_BOOTSTRAP_SERVERS` and `CLICKHOUSE_URL`.

It lives in `schemas/` because every package may import `schemas` and nothing else:
settings are the configuration contract.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BenefitSettings",
    "ClickHouseSettings",
    "CollectorSettings",
    "KafkaSettings",
    "LabellingSettings",
    "MetricsSettings",
    "Settings",
    "SettingsError",
    "SinkSettings",
    "StreamSettings",
    "load_settings",
]

ENV_PREFIX = "CARBON_ACCOUNTS_"
ALIASES = {
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka", "bootstrap_servers"),
    "CLICKHOUSE_URL": ("clickhouse", "url"),
}
SECRET = {"secret": True}


_COMPRESSION = {"none": None, "gzip": "gzip", "snappy": "snappy", "lz4": "lz4", "zstd": "zstd"}


class SettingsError(ValueError):
    """A setting that cannot be read: names the setting and where it came from."""


@dataclass
class KafkaSettings:
    #: a real cluster ("host:9092,host2:9092"); unset: start the embedded broker
    bootstrap_servers: str | None = None
    partitions: int = 8  # for every topic we create; bounds the number of workers
    replication_factor: int = 1
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, metadata=SECRET)
    ssl_cafile: str | None = None
    embedded_port: int = 0  # 0: a free port
    #: of every batch our producers send (gzip, snappy, lz4, zstd; "none"). The embedded
    #: broker rewrites all it holds to disk about once a second, so what it holds costs
    #: CPU continuously: zstd keeps our Arrow batches and states 6-70x smaller there
    compression_type: str = "zstd"

    def producer_options(self) -> dict[str, Any]:
        """`client_options` plus the producer's compression (aiokafka keyword arguments)."""
        if self.compression_type not in _COMPRESSION:
            raise SettingsError(
                f"kafka.compression_type: {self.compression_type!r} is not one of "
                + ", ".join(_COMPRESSION)
            )
        return {**self.client_options(), "compression_type": _COMPRESSION[self.compression_type]}

    def client_options(self) -> dict[str, Any]:
        """Security keyword arguments for aiokafka clients (bootstrap excluded)."""
        opts: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            opts.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            opts["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        return opts


@dataclass
class ClickHouseSettings:
    #: a server ("http://user:pass@host:8123/db"); unset: chdb on <data_dir>/clickhouse
    url: str | None = field(default=None, metadata=SECRET)
    database: str = "carbon_accounts"
    #: a server cluster's name: the schema is migrated ON CLUSTER (sinks/sql/*_cluster)
    cluster: str = ""


@dataclass
class StreamSettings:
    app_id: str = "carbon-accounts"
    timezone: str = "Asia/Shanghai"  # accounts' local calendar unless they say otherwise
    grace_hours: float = 6.0  # late readings within this revise windows; older: too_late
    window_minutes: int = 15
    web_port: int = 6066  # Faust web: health, query catalogue when the store is owned here
    #: account region → grid factor region (schemas/data/factors.csv); `*` for the rest.
    #: Regions: national, national_excl_nonfossil, national_fossil, east_china.
    grid_factor_regions: str = "*=national"
    #: windows kept in the accounting state (≥ grace): a factor revision re-emits those;
    #: older windows are recomputed with `carbon-accounts replay` or in the store
    window_retention_hours: float = 24.0
    #: seconds between snapshots of changed accounts' state to the changelog; the
    #: readings they cover are committed after each snapshot (a crash re-reads at most
    #: this much). Longer: fewer state writes when accounts get many messages (catch-up)
    snapshot_seconds: float = 15.0
    #: a worker that sends no heartbeat for this long leaves the consumer group, and its
    #: partitions go to the others (a crashed worker's are idle this long); the broker
    #: bounds it (Kafka: group.min/max.session.timeout.ms, 6 s to 30 min by default)
    session_timeout_seconds: float = 60.0
    heartbeat_interval_seconds: float = 3.0  # well under session_timeout_seconds (a third)
    #: how long a rebalance waits for every member to rejoin before it goes on without them
    rebalance_timeout_seconds: float = 60.0
    #: copies of each table kept warm by other workers (Faust's standby replicas): a
    #: failover then skips most of the changelog replay, but every standby reads all of
    #: its tables' changelogs as they are written (measured here with two workers: each
    #: used 3x the CPU of one worker alone). 0: the new owner recovers from the changelog
    standby_replicas: int = 0


@dataclass
class CollectorSettings:
    spool_dir: str = "spool"  # under data_dir unless absolute
    spool_max_mb: int = 512


@dataclass
class SinkSettings:
    batch_rows: int = 50_000  # a batch is stored when it has this many rows ...
    batch_seconds: float = 1.0  # ... or is this old, whichever comes first
    group_id: str = "carbon-accounts-sink"  # Kafka consumer group of the sink
    retry_initial_seconds: float = 0.5  # backoff while ClickHouse is unreachable ...
    retry_max_seconds: float = 30.0  # ... doubling up to this
    raw_ttl_days: int = 1095  # TTL of raw energy_intervals; 0: keep forever


@dataclass
class LabellingSettings:
    #: YAML of bands, lift, window and hysteresis per area and industry; unset: the packaged
    #: default (streams/data/labelling.yaml)
    rules_file: str | None = None


@dataclass
class BenefitSettings:
    #: YAML of per-behaviour reductions, points per gram and daily caps; unset: the packaged
    #: default (streams/data/benefit.yaml)
    table_file: str | None = None
    keep_days: int = 7  # a person's days kept for caps and duplicates; older events: too_late


@dataclass
class MetricsSettings:
    port: int = 9464  # first process; later ones take the next free port
    enabled: bool = True
    #: where /metrics listens: 127.0.0.1 on one machine; 0.0.0.0 in a container for Prometheus
    host: str = "127.0.0.1"


@dataclass
class Settings:
    data_dir: str = "var"  # everything the embedded defaults keep on disk
    log_level: str = "INFO"
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    clickhouse: ClickHouseSettings = field(default_factory=ClickHouseSettings)
    streams: StreamSettings = field(default_factory=StreamSettings)
    collectors: CollectorSettings = field(default_factory=CollectorSettings)
    sinks: SinkSettings = field(default_factory=SinkSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    labelling: LabellingSettings = field(default_factory=LabellingSettings)
    benefit: BenefitSettings = field(default_factory=BenefitSettings)

    @property
    def data_path(self) -> Path:
        """`data_dir` as an absolute path."""
        return Path(self.data_dir).resolve()

    def path(self, sub: str) -> Path:
        """A path under data_dir (unless `sub` is absolute)."""
        return Path(sub) if Path(sub).is_absolute() else self.data_path / sub

    def as_dict(self, *, mask_secrets: bool = True) -> dict[str, Any]:
        """The effective settings as nested dicts, secrets masked."""
        return _as_dict(self, mask_secrets)


def _as_dict(obj: Any, mask: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = _as_dict(value, mask)
        elif mask and f.metadata.get("secret") and value:
            out[f.name] = _mask(str(value))
        else:
            out[f.name] = value
    return out


def _mask(value: str) -> str:
    # keep a URL readable: hide only its password
    if "://" in value:
        return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1****@", value)
    return "****"


def _convert(tp: Any, raw: Any, where: str) -> Any:
    args = typing.get_args(tp)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        if raw is None or raw == "":
            return None
        tp = next(a for a in args if a is not type(None))
    try:
        if tp is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in {"1", "true", "yes", "on"}:
                return True
            if str(raw).lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if tp is int and isinstance(raw, float):
            raise ValueError(raw)
        return tp(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{where}: {raw!r} is not a valid {tp.__name__}") from None


def _apply(obj: Any, values: Mapping[str, Any], where: str) -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, raw in values.items():
        if key not in names:
            raise SettingsError(f"{where}: unknown setting {key!r}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(raw, Mapping):
                raise SettingsError(f"{where}: [{key}] must be a table")
            _apply(current, raw, f"{where} [{key}]")
        else:
            setattr(obj, key, _convert(hints[key], raw, f"{where} {key}"))


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    settings = Settings()
    sections = {
        f.name
        for f in dataclasses.fields(settings)
        if dataclasses.is_dataclass(getattr(settings, f.name))
    }
    for name, value in environ.items():
        if name in ALIASES:
            section, key = ALIASES[name]
            out.setdefault(section, {})[key] = value
        elif name.startswith(ENV_PREFIX) and name != ENV_PREFIX + "CONFIG":
            rest = name[len(ENV_PREFIX) :].lower()
            section = next((s for s in sections if rest.startswith(s + "_")), None)
            if section:
                out.setdefault(section, {})[rest[len(section) + 1 :]] = value
            else:
                out.setdefault("", {})[rest] = value
    top = out.pop("", {})
    return {**top, **out}


def load_settings(
    config: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """The effective settings: defaults, then the TOML file, then the environment."""
    environ = os.environ if environ is None else environ
    settings = Settings()
    path = config or environ.get(ENV_PREFIX + "CONFIG")
    if path is None and Path("carbon-accounts.toml").exists():
        path = "carbon-accounts.toml"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise SettingsError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: {exc}") from None
        _apply(settings, data, str(path))
    _apply(settings, _env_values(environ), "environment")
    return settings
