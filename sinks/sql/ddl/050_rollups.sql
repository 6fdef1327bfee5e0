-- Rollups of emissions by hour, day and month in the account's local calendar.
--
-- Exact under revisions: each rollup reads emissions_15m with FINAL, so a window counts
-- once, at its highest revision, however many times it was revised or replayed, in any
-- order, and whatever a crash left half-written. Revision deltas summed by a
-- materialized view would need the sink to read the stored revision before every
-- write and keep two inserts atomic; this needs neither. A city's enterprises make
-- ~0.7 M windows a day, and ORDER BY (account_id, energy_type, window_start) keeps a
-- FINAL read of one account or one month cheap.
--
-- Local calendar: the sink writes utc_offset_minutes from the account's time zone
-- (accounts.timezone, default Asia/Shanghai), so window_start + offset is local time
-- (ClickHouse's time-zone arguments must be constants, so one view cannot follow each
-- account's zone). Hours are given as the UTC instant the local hour starts.

CREATE OR REPLACE VIEW emissions_hourly
(
    account_id  String                 COMMENT 'account',
    energy_type LowCardinality(String) COMMENT 'energy type',
    hour_start  DateTime64(3, 'UTC')   COMMENT 'start of the local hour, as a UTC instant',
    day         Date                   COMMENT 'local calendar day of that hour',
    consumption Float64                COMMENT 'consumption in unit',
    unit        String                 COMMENT 'canonical unit',
    tco2e       Float64                COMMENT 'emissions, tCO2e',
    windows     UInt64                 COMMENT '15-minute windows in the hour'
)
AS SELECT
    account_id,
    energy_type,
    toStartOfHour(window_start + toIntervalMinute(utc_offset_minutes))
        - toIntervalMinute(utc_offset_minutes) AS hour_start,
    toDate(window_start + toIntervalMinute(utc_offset_minutes)) AS day,
    sum(consumption) AS consumption,
    any(unit) AS unit,
    sum(tco2e) AS tco2e,
    count() AS windows
FROM emissions_15m FINAL
GROUP BY account_id, energy_type, hour_start, day
COMMENT 'emissions per account, energy type and local hour (exact: emissions_15m FINAL)';

CREATE OR REPLACE VIEW emissions_daily
(
    account_id  String                 COMMENT 'account',
    energy_type LowCardinality(String) COMMENT 'energy type',
    day         Date                   COMMENT 'local calendar day',
    consumption Float64                COMMENT 'consumption in unit',
    unit        String                 COMMENT 'canonical unit',
    tco2e       Float64                COMMENT 'emissions, tCO2e',
    windows     UInt64                 COMMENT '15-minute windows in the day'
)
AS SELECT
    account_id,
    energy_type,
    toDate(window_start + toIntervalMinute(utc_offset_minutes)) AS day,
    sum(consumption) AS consumption,
    any(unit) AS unit,
    sum(tco2e) AS tco2e,
    count() AS windows
FROM emissions_15m FINAL
GROUP BY account_id, energy_type, day
COMMENT 'emissions per account, energy type and local day (exact: emissions_15m FINAL)';

CREATE OR REPLACE VIEW emissions_monthly
(
    account_id  String                 COMMENT 'account',
    energy_type LowCardinality(String) COMMENT 'energy type',
    month       Date                   COMMENT 'first day of the local calendar month',
    consumption Float64                COMMENT 'consumption in unit',
    unit        String                 COMMENT 'canonical unit',
    tco2e       Float64                COMMENT 'emissions, tCO2e',
    windows     UInt64                 COMMENT '15-minute windows in the month'
)
AS SELECT
    account_id,
    energy_type,
    toStartOfMonth(toDate(window_start + toIntervalMinute(utc_offset_minutes))) AS month,
    sum(consumption) AS consumption,
    any(unit) AS unit,
    sum(tco2e) AS tco2e,
    count() AS windows
FROM emissions_15m FINAL
GROUP BY account_id, energy_type, month
COMMENT 'emissions per account, energy type and local month (exact: emissions_15m FINAL)';
