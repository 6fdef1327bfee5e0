-- Energy intervals: one meter's consumption over [start, end) (topic energy.intervals).
-- Raw data for audits: the sink sets its TTL from settings (sinks.raw_ttl_days).
-- A replay writes the same key again and ReplacingMergeTree keeps one row: read with FINAL.
CREATE TABLE IF NOT EXISTS energy_intervals
(
    meter_id    String                 COMMENT 'meter',
    account_id  String                 COMMENT 'account the meter belongs to',
    energy_type LowCardinality(String) COMMENT 'electricity, natural_gas, heat, ...',
    `start`     DateTime64(3, 'UTC')   COMMENT 'interval start, UTC',
    `end`       DateTime64(3, 'UTC')   COMMENT 'interval end (exclusive), UTC',
    consumption Float64                COMMENT 'consumption over the interval, in unit',
    unit        LowCardinality(String) COMMENT 'canonical unit of the energy type (kWh, Nm3, t, GJ, L)',
    uncertain   Bool                   COMMENT 'an uncertain-quality reading went into it',
    event       LowCardinality(String) COMMENT 'empty, rollover or reset',
    source_seqs Array(Int64)           COMMENT 'seq of the readings it came from'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(`start`)
ORDER BY (account_id, meter_id, `start`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'energy intervals per meter (topic energy.intervals), raw data with a TTL';
