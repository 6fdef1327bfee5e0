-- Reference data: accounts, intensity denominators, benchmarks and emission factors.
-- Columns are named as the fields of their contracts (schemas/contracts.py). Each table
-- is a ReplacingMergeTree on `updated_at`: the latest version of a key wins; read
-- with FINAL.

CREATE TABLE IF NOT EXISTS accounts
(
    account_id       String                 COMMENT 'enterprise, entity or person',
    area             LowCardinality(String) COMMENT 'industry, energy, construction, transportation, agriculture_forestry, daily_life',
    name             String                 COMMENT 'display name',
    region           LowCardinality(String) COMMENT 'grid / administrative region, e.g. east_china',
    district         LowCardinality(String) COMMENT 'district, for residents and city views',
    industry_code    LowCardinality(String) COMMENT 'GB/T 4754 industry code; empty for residents',
    denominator_unit LowCardinality(String) COMMENT 'unit intensity is divided by: 10k_yuan, MWh, m2, ...',
    timezone         LowCardinality(String) COMMENT 'local calendar for days, months, years',
    updated_at       DateTime64(3, 'UTC')   DEFAULT now64(3) COMMENT 'version: the latest wins'
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY account_id
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'the accounts registry (topic accounts.registry)';

CREATE TABLE IF NOT EXISTS denominators
(
    account_id   String                 COMMENT 'account',
    period_start DateTime64(3, 'UTC')   COMMENT 'period start, UTC',
    period_end   DateTime64(3, 'UTC')   COMMENT 'period end (exclusive), UTC',
    value        Float64                COMMENT 'denominator over the period, in unit',
    unit         LowCardinality(String) COMMENT '10k_yuan (value added), MWh, GJ, m2, vehicle_km, ...',
    updated_at   DateTime64(3, 'UTC')   DEFAULT now64(3) COMMENT 'version: the latest wins'
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (account_id, period_start)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'intensity denominators per account and period (topic accounts.denominators)';

CREATE TABLE IF NOT EXISTS benchmarks
(
    area          LowCardinality(String) COMMENT 'area of the accounts it applies to',
    industry_code LowCardinality(String) COMMENT 'GB/T 4754 industry code',
    region        LowCardinality(String) COMMENT 'region it applies to',
    period_start  DateTime64(3, 'UTC')   COMMENT 'period start, UTC',
    period_end    DateTime64(3, 'UTC')   COMMENT 'period end (exclusive), UTC',
    value         Float64                COMMENT 'benchmark intensity, tCO2e per denominator unit',
    unit          LowCardinality(String) COMMENT 'e.g. tCO2e/10k_yuan',
    source        String                 COMMENT 'where the value comes from',
    version       LowCardinality(String) COMMENT 'version of the benchmark table',
    updated_at    DateTime64(3, 'UTC')   DEFAULT now64(3) COMMENT 'version: the latest wins'
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (area, industry_code, region, period_start)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'industry benchmark intensities (topic benchmarks)';

CREATE TABLE IF NOT EXISTS emission_factors
(
    factor_id      LowCardinality(String) COMMENT 'factor id, e.g. grid-east_china',
    energy_type    LowCardinality(String) COMMENT 'energy type it applies to',
    region         LowCardinality(String) COMMENT 'region it applies to',
    value          Float64                COMMENT 'factor value',
    unit           LowCardinality(String) COMMENT 'e.g. tCO2e/kWh',
    effective_from DateTime64(3, 'UTC')   COMMENT 'first instant it applies',
    effective_to   Nullable(DateTime64(3, 'UTC')) COMMENT 'first instant it no longer applies; NULL: open',
    source         String                 COMMENT 'publication it comes from',
    version        LowCardinality(String) COMMENT 'version (a revision for a past period is a new version)',
    updated_at     DateTime64(3, 'UTC')   DEFAULT now64(3) COMMENT 'version: the latest wins'
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (factor_id, version, effective_from)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'emission factors, versioned (topic factors)';
