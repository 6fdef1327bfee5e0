-- Current labels: each account's latest colour. account_labels is the label history
-- (one row per change); this view keeps its highest revision per account.
CREATE OR REPLACE VIEW account_labels_current
(
    account_id        String                           COMMENT 'account',
    area              String                           COMMENT 'area of the account',
    industry_code     String                           COMMENT 'GB/T 4754 industry code',
    region            String                           COMMENT 'region',
    colour            Nullable(String)                 COMMENT 'current colour; NULL: withdrawn',
    k                 Nullable(Float64)                COMMENT 'intensity / benchmark at the last change',
    intensity         Nullable(Float64)                COMMENT 'intensity at the last change',
    benchmark         Nullable(Float64)                COMMENT 'benchmark used',
    benchmark_version Nullable(String)                 COMMENT 'version of that benchmark',
    reason            String                           COMMENT 'why it last changed',
    revision          UInt32                           COMMENT 'label revision',
    ts                DateTime64(3, 'UTC')             COMMENT 'when it was evaluated'
)
AS SELECT
    account_id,
    argMax(area, revision) AS area,
    argMax(industry_code, revision) AS industry_code,
    argMax(region, revision) AS region,
    argMax(new_colour, revision) AS colour,
    argMax(k, revision) AS k,
    argMax(intensity, revision) AS intensity,
    argMax(benchmark, revision) AS benchmark,
    argMax(benchmark_version, revision) AS benchmark_version,
    argMax(reason, revision) AS reason,
    max(revision) AS revision,
    argMax(ts, revision) AS ts
FROM account_labels
GROUP BY account_id
COMMENT 'the current colour of each account (highest revision of account_labels)';
