"""Reference data of the labelling: accounts, denominators, benchmarks; rule and points tables.

Reads the files `carbon-accounts accounts load` and `benchmarks load` take (CSV or YAML),
validates every row through the contracts (`schemas.codec.decode`) and cross-checks
them, so a bad file is refused whole with every error listed by row, before anything is
produced. Also the Kafka keys and partitions of the reference topics:

- `accounts.registry`: key `account_id`;
- `accounts.denominators`: key `account_id|period_start`, on the partition of `account_id`
  (so an account's windows, registry entry and denominators meet in one worker);
- `benchmarks`: key `area|industry_code|region|period_start`.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from schemas.codec import decode
from schemas.contracts import Account, Area, Benchmark, Contract, Denominator
from schemas.errors import ContractError, ReasonCode
from schemas.settings import Settings
from streams.rules.benefit import BenefitTable
from streams.rules.labelling import BenchmarkValue, DenominatorValue, RuleBook

__all__ = [
    "RegistryError",
    "account_key",
    "benchmark_key",
    "benchmark_value",
    "data_path",
    "denominator_key",
    "denominator_value",
    "load_benefit_table",
    "load_rulebook",
    "partition_for",
    "produce",
    "read_accounts",
    "read_benchmarks",
    "validate",
]

ACCOUNT_FIELDS = (
    "account_id",
    "area",
    "name",
    "region",
    "district",
    "industry_code",
    "denominator_unit",
    "timezone",
)


class RegistryError(ValueError):
    """A reference file that cannot be loaded; `errors` lists every problem, by row."""

    def __init__(self, path: str | Path, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        shown = "\n  ".join(self.errors[:50])
        more = f"\n  ... and {len(self.errors) - 50} more" if len(self.errors) > 50 else ""
        super().__init__(f"{path}: {len(self.errors)} error(s)\n  {shown}{more}")


def data_path(name: str) -> Path:
    """A file packaged in streams/data/ (sample data and default tables)."""
    return Path(str(files("streams").joinpath("data", name)))


# ---------------------------------------------------------------- keys


def account_key(account: Account) -> str:
    """Kafka key of an account on `accounts.registry`."""
    return account.account_id


def denominator_key(d: Denominator) -> str:
    """Kafka key of a denominator (compaction keeps one per account and period)."""
    return f"{d.account_id}|{d.period_start.isoformat()}"


def benchmark_key(b: Benchmark) -> str:
    """Kafka key of a benchmark (compaction keeps one per area, industry, region, period)."""
    return f"{b.area}|{b.industry_code}|{b.region}|{b.period_start.isoformat()}"


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives `key`, as Faust and aiokafka do."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def denominator_value(d: Denominator) -> DenominatorValue:
    """The rule's view of a denominator."""
    return DenominatorValue(d.period_start, d.period_end, d.value)


def benchmark_value(b: Benchmark) -> BenchmarkValue:
    """The rule's view of a benchmark."""
    return BenchmarkValue(
        b.area, b.industry_code, b.region, b.period_start, b.period_end, b.value, b.version
    )


def validate(record: Account | Denominator | Benchmark) -> None:
    """Rules across fields of reference records from any producer; raise ContractError.

    An account's timezone must exist; a denominator or benchmark needs a period that ends
    after it starts and a value > 0; a benchmark's unit is tCO2e per a denominator unit.
    """
    if isinstance(record, Account):
        try:
            ZoneInfo(record.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ContractError(
                ReasonCode.OUT_OF_RANGE, f"unknown timezone {record.timezone!r}", "timezone"
            ) from None
        return
    if record.period_end <= record.period_start:
        raise ContractError(
            ReasonCode.BAD_TIME, "period_end is not after period_start", "period_end"
        )
    if not record.value > 0:
        raise ContractError(ReasonCode.OUT_OF_RANGE, f"value {record.value} must be > 0", "value")
    if isinstance(record, Benchmark) and not record.unit.startswith("tCO2e/"):
        raise ContractError(
            ReasonCode.UNKNOWN_UNIT,
            f"unit {record.unit!r} must be tCO2e/<denominator unit>",
            "unit",
        )


# ---------------------------------------------------------------- files


def _rows(path: Path, section: str) -> list[tuple[str, dict[str, Any]]]:
    """`(where, row)` of a CSV file or of the list `section` of a YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(path, [str(exc)]) from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        return [(f"row {i}", dict(row)) for i, row in enumerate(reader, start=2)]
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise RegistryError(path, ["expected a .csv, .yaml, .yml or .json file"])
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryError(path, [f"not YAML: {exc}"]) from None
    items = data.get(section) if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise RegistryError(path, [f"expected a list under {section!r}"])
    out = []
    for i, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise RegistryError(path, [f"{section}[{i}]: expected a mapping"])
        out.append((f"{section}[{i}]", dict(item)))
    return out


def _time(value: Any, timezone: str) -> Any:
    # a date (or "YYYY-MM-DD") is local midnight; anything else goes to the contract as is
    if isinstance(value, datetime):
        return value.isoformat() if value.tzinfo else value.replace(tzinfo=ZoneInfo(timezone))
    if isinstance(value, date):
        return datetime.combine(value, time(), ZoneInfo(timezone))
    if isinstance(value, str) and len(value) == 10:
        try:
            return datetime.combine(date.fromisoformat(value), time(), ZoneInfo(timezone))
        except ValueError:
            return value
    return value


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _decode(cls: type[Any], row: Mapping[str, Any], where: str, errors: list[str]) -> Any:
    try:
        return decode(cls, row)
    except ContractError as exc:
        errors.append(f"{where}: {exc}")
        return None


def _check_period(where: str, start: datetime, end: datetime, errors: list[str]) -> bool:
    if end <= start:
        errors.append(f"{where}: period_end {end.isoformat()} is not after period_start")
        return False
    return True


def read_accounts(
    path: str | Path, default_timezone: str = "Asia/Shanghai"
) -> tuple[list[Account], list[Denominator]]:
    """Accounts and their denominators from a CSV or YAML file; RegistryError lists all errors.

    YAML: `accounts:` a list of Account fields, each with an optional `denominators:` list
    of `{period_start, period_end, value}`. CSV: one row per account and period, columns
    the Account fields plus `period_start, period_end, denominator` (empty: no period).
    """
    path = Path(path)
    errors: list[str] = []
    accounts: dict[str, Account] = {}
    denominators: dict[tuple[str, datetime], Denominator] = {}
    for where, row in _rows(path, "accounts"):
        tz = str(row.get("timezone") or default_timezone)
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append(f"{where}: unknown timezone {tz!r}")
            continue
        fields = {k: row[k] for k in ACCOUNT_FIELDS if k in row and row[k] is not None}
        fields["timezone"] = tz
        fields = {k: str(v) if k != "timezone" else v for k, v in fields.items()}
        account = _decode(Account, fields, where, errors)
        if account is None:
            continue
        if account.area != Area.DAILY_LIFE and not account.denominator_unit:
            errors.append(f"{where}: {account.account_id}: denominator_unit is required")
        known = accounts.get(account.account_id)
        if known is not None and known.asdict() != account.asdict():
            errors.append(f"{where}: {account.account_id} repeated with other account fields")
        accounts[account.account_id] = account
        periods = list(row.get("denominators") or [])
        if path.suffix.lower() == ".csv" and row.get("period_start"):
            periods = [
                {
                    "period_start": row.get("period_start"),
                    "period_end": row.get("period_end"),
                    "value": row.get("denominator"),
                }
            ]
        for j, p in enumerate(periods, start=1):
            pwhere = f"{where}.denominators[{j}]" if len(periods) > 1 or "[" in where else where
            if not isinstance(p, Mapping):
                errors.append(f"{pwhere}: expected a mapping")
                continue
            d = _decode(
                Denominator,
                {
                    "account_id": account.account_id,
                    "period_start": _time(p.get("period_start"), tz),
                    "period_end": _time(p.get("period_end"), tz),
                    "value": _number(p.get("value")),
                    "unit": str(p.get("unit") or account.denominator_unit),
                },
                pwhere,
                errors,
            )
            if d is None or not _check_period(pwhere, d.period_start, d.period_end, errors):
                continue
            if d.value <= 0:
                errors.append(f"{pwhere}: denominator value {d.value} must be > 0")
            elif d.unit != account.denominator_unit:
                errors.append(
                    f"{pwhere}: unit {d.unit!r} is not the account's {account.denominator_unit!r}"
                )
            else:
                denominators[(d.account_id, d.period_start)] = d
    _check_overlaps(denominators.values(), errors)
    if errors:
        raise RegistryError(path, errors)
    return list(accounts.values()), list(denominators.values())


def _check_overlaps(denominators: Iterable[Denominator], errors: list[str]) -> None:
    by_account: dict[str, list[Denominator]] = {}
    for d in denominators:
        by_account.setdefault(d.account_id, []).append(d)
    for account_id, ds in by_account.items():
        ds.sort(key=lambda d: d.period_start)
        for a, b in itertools.pairwise(ds):
            if b.period_start < a.period_end:
                errors.append(
                    f"{account_id}: denominator periods overlap: {a.period_start.isoformat()} .. "
                    f"{a.period_end.isoformat()} and {b.period_start.isoformat()} .."
                )


def read_benchmarks(path: str | Path, default_timezone: str = "Asia/Shanghai") -> list[Benchmark]:
    """Benchmarks from a CSV or YAML file (`benchmarks:` list of Benchmark fields)."""
    path = Path(path)
    errors: list[str] = []
    out: dict[str, Benchmark] = {}
    for where, row in _rows(path, "benchmarks"):
        fields = {
            k: ("" if v is None else str(v))
            for k, v in row.items()
            if k not in ("period_start", "period_end", "value")
        }
        fields["period_start"] = _time(row.get("period_start"), default_timezone)
        fields["period_end"] = _time(row.get("period_end"), default_timezone)
        fields["value"] = _number(row.get("value"))
        b = _decode(Benchmark, fields, where, errors)
        if b is None or not _check_period(where, b.period_start, b.period_end, errors):
            continue
        if b.value <= 0:
            errors.append(f"{where}: benchmark value {b.value} must be > 0")
        elif not b.unit.startswith("tCO2e/"):
            errors.append(f"{where}: unit {b.unit!r} must be tCO2e/<denominator unit>")
        elif not b.version or not b.source:
            errors.append(f"{where}: source and version are required")
        elif benchmark_key(b) in out:
            errors.append(f"{where}: repeats {benchmark_key(b)}")
        else:
            out[benchmark_key(b)] = b
    if errors:
        raise RegistryError(path, errors)
    return list(out.values())


def load_rulebook(settings: Settings) -> RuleBook:
    """The labelling rule of the settings (`labelling.rules_file`, else the packaged default)."""
    path = Path(settings.labelling.rules_file or data_path("labelling.yaml"))
    try:
        return RuleBook.from_mapping(yaml.safe_load(path.read_text()) or {})
    except (OSError, yaml.YAMLError, ValueError, TypeError) as exc:
        raise RegistryError(path, [str(exc)]) from None


def load_benefit_table(settings: Settings) -> BenefitTable:
    """The benefit table of the settings (`benefit.table_file`, else the packaged default)."""
    path = Path(settings.benefit.table_file or data_path("benefit.yaml"))
    try:
        return BenefitTable.from_mapping(yaml.safe_load(path.read_text()) or {})
    except (OSError, yaml.YAMLError, ValueError, TypeError) as exc:
        raise RegistryError(path, [str(exc)]) from None


# ---------------------------------------------------------------- Kafka


async def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[str, Contract, str | None]],
    **options: Any,
) -> int:
    """Send `(key, record, partition key)` to `topic` as JSON, acks=all; returns the count.

    `partition key`: route by this key instead of the record key (None: the record key).
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **options
    )
    await producer.start()
    try:
        partitions = len(await producer.partitions_for(topic))
        futures = []
        for key, record, by in records:
            futures.append(
                await producer.send(
                    topic,
                    value=record.dumps(),
                    key=key.encode(),
                    partition=partition_for(by or key, partitions),
                    headers=[("content-type", b"application/json")],
                )
            )
        for f in futures:
            await f
        return len(futures)
    finally:
        await producer.stop()
