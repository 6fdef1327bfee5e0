-- Emission windows: one row per account x energy type x 15-minute window and revision.
-- ReplacingMergeTree keeps the highest revision of each window, so a replay or a
-- late-data revision overwrites instead of adding. Read with FINAL (or argMax).
CREATE TABLE IF NOT EXISTS emissions_15m
(
    account_id     String                  COMMENT 'enterprise or person',
    energy_type    LowCardinality(String)  COMMENT 'electricity, natural_gas, heat, ...',
    window_start   DateTime64(3, 'UTC')    COMMENT 'window start, UTC',
    window_end     DateTime64(3, 'UTC')    COMMENT 'window end (exclusive), UTC',
    consumption    Float64                 COMMENT 'consumption in unit',
    unit           LowCardinality(String)  COMMENT 'canonical unit of the energy type',
    tco2e          Float64                 COMMENT 'emissions, tonnes CO2 equivalent',
    factor_id      LowCardinality(String)  COMMENT 'emission factor used',
    factor_version LowCardinality(String)  COMMENT 'version of that factor',
    factor_value   Float64                 COMMENT 'value of that factor',
    factor_unit    LowCardinality(String)  COMMENT 'unit of that factor, e.g. tCO2e/kWh',
    uncertain      Bool                    COMMENT 'an uncertain-quality reading went into it',
    revision       UInt32                  COMMENT 'grows each time the window is revised',
    utc_offset_minutes Int16 DEFAULT 0     COMMENT 'offset of the account''s local calendar at window_start (written by the sink from the registry); local time = window_start + offset'
)
ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(window_start)
ORDER BY (account_id, energy_type, window_start)
-- insert_deduplication_token works on non-replicated tables only with a window
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'emissions per account, energy type and 15-minute window (topic emissions.windows)';
