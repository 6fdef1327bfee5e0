from __future__ import annotations

from pathlib import Path

import pytest

from schemas.settings import SettingsError, load_settings


def test_defaults_then_toml_then_environment(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('data_dir = "/srv/ca"\n[kafka]\npartitions = 16\n[streams]\ngrace_hours = 2\n')
    s = load_settings(
        toml,
        environ={
            "CARBON_ACCOUNTS_KAFKA_PARTITIONS": "4",
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
        },
    )
    assert s.data_dir == "/srv/ca"
    assert s.kafka.partitions == 4  # environment wins over the file
    assert s.streams.grace_hours == 2.0
    assert s.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert load_settings(environ={}).kafka.partitions == 8


def test_secrets_are_masked() -> None:
    s = load_settings(
        environ={
            "CLICKHOUSE_URL": "https://analyst:hunter2@ch:8443/db",
            "CARBON_ACCOUNTS_KAFKA_SASL_PASSWORD": "s3cret",
        }
    )
    shown = s.as_dict()
    assert "hunter2" not in str(shown) and "s3cret" not in str(shown)
    assert shown["clickhouse"]["url"] == "https://analyst:****@ch:8443/db"
    assert s.as_dict(mask_secrets=False)["kafka"]["sasl_password"] == "s3cret"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CARBON_ACCOUNTS_KAFKA_PARTITIONS": "many"}, "partitions"),
        ({"CARBON_ACCOUNTS_STREAMS_NOPE": "1"}, "nope"),
        ({"CARBON_ACCOUNTS_METRICS_ENABLED": "perhaps"}, "enabled"),
    ],
)
def test_bad_settings_name_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ=environ)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_producer_options_carry_the_compression() -> None:
    assert load_settings(environ={}).kafka.producer_options()["compression_type"] == "zstd"
    off = load_settings(environ={"CARBON_ACCOUNTS_KAFKA_COMPRESSION_TYPE": "none"})
    assert off.kafka.producer_options()["compression_type"] is None
    bad = load_settings(environ={"CARBON_ACCOUNTS_KAFKA_COMPRESSION_TYPE": "brotli"})
    with pytest.raises(SettingsError, match="compression_type"):
        bad.kafka.producer_options()
