-- Colour labels and carbon-benefit points. Columns are named as their contracts' fields.

CREATE TABLE IF NOT EXISTS account_labels
(
    account_id        String                           COMMENT 'account',
    area              LowCardinality(String)           COMMENT 'area of the account',
    industry_code     LowCardinality(String)           COMMENT 'GB/T 4754 industry code',
    region            LowCardinality(String)           COMMENT 'region',
    old_colour        LowCardinality(Nullable(String)) COMMENT 'colour before; NULL: none',
    new_colour        LowCardinality(Nullable(String)) COMMENT 'colour after; NULL: withdrawn (see reason)',
    k                 Nullable(Float64)                COMMENT 'intensity / benchmark',
    intensity         Nullable(Float64)                COMMENT 'tCO2e per denominator unit over the period',
    benchmark         Nullable(Float64)                COMMENT 'benchmark intensity used',
    benchmark_version LowCardinality(Nullable(String)) COMMENT 'version of that benchmark',
    period_start      DateTime64(3, 'UTC')             COMMENT 'evaluation period start',
    period_end        DateTime64(3, 'UTC')             COMMENT 'evaluation period end (exclusive)',
    reason            LowCardinality(String)           COMMENT 'why: first_evaluation, intensity_change, benchmark_change, no_benchmark, ...',
    revision          UInt32                           COMMENT 'label revision of the account, grows by one per change',
    ts                DateTime64(3, 'UTC')             COMMENT 'when it was evaluated'
)
ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(ts)
ORDER BY (account_id, revision)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'colour changes, one row per change (topic accounts.labels); a replay overwrites';

CREATE TABLE IF NOT EXISTS benefit_points
(
    event_id    String                 COMMENT 'the benefit event; duplicates count once',
    account_id  String                 COMMENT 'the person',
    behaviour   LowCardinality(String) COMMENT 'bus_trip, subway_km, cycling_km, walking_steps, e_bill, ...',
    quantity    Float64                COMMENT 'quantity of the behaviour, in unit',
    unit        LowCardinality(String) COMMENT 'trip, km, steps, bill, ...',
    reduction_g Float64                COMMENT 'grams CO2e avoided',
    points      Float64                COMMENT 'points earned, after the daily cap',
    capped      Bool                   COMMENT 'the daily cap cut this event',
    ts          DateTime64(3, 'UTC')   COMMENT 'when the behaviour happened',
    district    LowCardinality(String) COMMENT 'district of the person'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (account_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'carbon-benefit points per event (topic benefit.points)';
