"""`accounts load` and `benchmarks load`: validation with every error by row, and delivery
to the real broker (keys, partitions: denominators on their account's partition)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from click.testing import CliRunner

from schemas.errors import ContractError
from streams.cli import cli
from streams.registry import data_path, partition_for, read_accounts, read_benchmarks, validate


def test_sample_data_covers_the_six_areas() -> None:
    accounts, denominators = read_accounts(data_path("accounts.yaml"))
    assert {a.area for a in accounts} == {
        "industry", "energy", "construction", "transportation", "agriculture_forestry",
        "daily_life",
    }  # fmt: skip
    assert {d.account_id for d in denominators} == {
        a.account_id for a in accounts if a.area != "daily_life"
    }
    benchmarks = read_benchmarks(data_path("benchmarks.yaml"))
    assert {b.area for b in benchmarks} == {a.area for a in accounts} - {"daily_life"}


def test_bad_accounts_file_lists_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "accounts.csv"
    bad.write_text(
        "account_id,area,name,region,district,industry_code,denominator_unit,timezone,"
        "period_start,period_end,denominator\n"
        "A1,industry,a,east,d,C26,10k_yuan,,2025-01-01,2026-01-01,100\n"
        "A2,mining,b,east,d,B06,t,,2025-01-01,2026-01-01,5\n"  # row 3: bad area
        "A3,industry,c,east,d,C30,10k_yuan,Mars/Base,2025-01-01,2026-01-01,5\n"  # row 4
        "A1,industry,a,east,d,C26,10k_yuan,,2025-06-01,2026-06-01,100\n"  # row 5: overlap
        "A4,industry,e,east,d,C30,10k_yuan,,2025-01-01,2024-01-01,5\n"  # row 6: end < start
        "A5,industry,f,east,d,C30,10k_yuan,,2025-01-01,2026-01-01,-5\n"  # row 7
    )
    result = CliRunner().invoke(cli, ["accounts", "load", "--check", str(bad)])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "5 error(s)" in out
    assert "row 3: bad_enum (field 'area')" in out
    assert "row 4: unknown timezone 'Mars/Base'" in out
    assert "A1: denominator periods overlap" in out
    assert "row 6: period_end" in out
    assert "row 7: denominator value -5.0 must be > 0" in out


def test_bad_benchmarks_file(tmp_path: Path) -> None:
    bad = tmp_path / "b.yaml"
    bad.write_text(
        "benchmarks:\n"
        "  - {area: industry, industry_code: C26, region: '*', period_start: 2025-01-01,\n"
        "     period_end: 2026-01-01, value: 0, unit: tCO2e/10k_yuan, source: s, version: v}\n"
        "  - {area: industry, industry_code: C26, region: '*', period_start: 2025-01-01,\n"
        "     period_end: 2026-01-01, value: 2, unit: kg, source: s, version: v}\n"
        "  - {area: industry, industry_code: C26, region: '*', period_start: 2025-01-01}\n"
    )
    result = CliRunner().invoke(cli, ["benchmarks", "load", str(bad)])
    assert result.exit_code == 1
    assert "benchmarks[1]: benchmark value 0.0 must be > 0" in result.output
    assert "benchmarks[2]: unit 'kg'" in result.output
    assert "benchmarks[3]: missing_field" in result.output


def test_load_sends_to_the_broker(bootstrap: str, tmp_path: Path, unique: str) -> None:
    accounts = tmp_path / "a.yaml"
    accounts.write_text(
        "accounts:\n"
        f"  - {{account_id: L1-{unique}, area: energy, name: plant, region: east,"
        "      district: d, industry_code: D4411, denominator_unit: MWh,"
        "      denominators: [{period_start: 2025-01-01, period_end: 2026-01-01, value: 10},"
        "                     {period_start: 2026-01-01, period_end: 2027-01-01, value: 12}]}\n"
    )
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "CARBON_ACCOUNTS_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(cli, ["accounts", "load", str(accounts)], env=env)
    assert result.exit_code == 0, result.output
    assert "sent 1 to accounts.registry, 2 to accounts.denominators" in result.output

    partitions: dict[str, int] = {}

    async def read(topic: str) -> list:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            partitions[topic] = len(consumer.partitions_for_topic(topic) or ())
            out = []
            for _ in range(20):
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    out += [r for r in records if unique in r.key.decode()]
                if out and not await consumer.getmany(timeout_ms=300):
                    break
            return out
        finally:
            await consumer.stop()

    registry = asyncio.run(read("accounts.registry"))
    assert [r.key.decode() for r in registry] == [f"L1-{unique}"]
    assert json.loads(registry[0].value)["area"] == "energy"
    dens = asyncio.run(read("accounts.denominators"))
    assert sorted(r.key.decode() for r in dens) == [
        f"L1-{unique}|2024-12-31T16:00:00+00:00",  # 2025-01-01 local (Asia/Shanghai)
        f"L1-{unique}|2025-12-31T16:00:00+00:00",
    ]
    # on the account's partition, as its windows are
    assert {r.partition for r in dens} == {registry[0].partition}
    n = partitions["accounts.registry"]
    assert registry[0].partition == partition_for(f"L1-{unique}", n)


def test_validate_reference_records_from_any_producer() -> None:
    accounts, denominators = read_accounts(data_path("accounts.yaml"))
    benchmark = read_benchmarks(data_path("benchmarks.yaml"))[0]
    for record in (accounts[0], denominators[0], benchmark):
        validate(record)  # the sample data is valid
    cases = [
        (accounts[0].derive(timezone="Mars/Olympus"), "out_of_range"),
        (denominators[0].derive(value=0.0), "out_of_range"),
        (denominators[0].derive(period_end=denominators[0].period_start), "bad_time"),
        (benchmark.derive(unit="kg"), "unknown_unit"),
    ]
    for record, reason in cases:
        with pytest.raises(ContractError) as info:
            validate(record)
        assert info.value.reason == reason


def test_benchmarks_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text(
        "area,industry_code,region,period_start,period_end,value,unit,source,version\n"
        "industry,C26,*,2025-01-01,2026-01-01,2.1,tCO2e/10k_yuan,city bureau,2025a\n"
        "energy,D44,east_china,2025-01-01T00:00:00+08:00,2026-01-01T00:00:00+08:00,0.8273,"
        "tCO2e/MWh,MEE 2023,2023\n"
    )
    b1, b2 = read_benchmarks(path)
    assert (b1.industry_code, b1.value, b1.version) == ("C26", 2.1, "2025a")
    # a date is local midnight (Asia/Shanghai); an RFC 3339 time is taken as given
    assert b1.period_start.isoformat() == "2024-12-31T16:00:00+00:00"
    assert b2.period_start == b1.period_start and b2.region == "east_china"
