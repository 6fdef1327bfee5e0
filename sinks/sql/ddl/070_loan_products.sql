-- Loan products as data: one row per product and colour. The seed is the default
-- product rule of shared/domain/README.md (our choice where no rule is published):
-- credit-limit multiplier dark green 1.5, light green 1.2, yellow 1.0, red not
-- eligible; rate cut dark green 50 bp, light green 25 bp. Banks' products are added
-- or changed with INSERT (a newer updated_at wins); the seed is written only into an
-- empty table, so applying the DDL again never undoes an edit.
CREATE TABLE IF NOT EXISTS loan_products
(
    product_id        String                 COMMENT 'product id',
    name              String                 COMMENT 'product name',
    lender            String                 COMMENT 'bank or institution offering it',
    area              LowCardinality(String) COMMENT 'area of the accounts it is for',
    colour            LowCardinality(String) COMMENT 'colour this row applies to',
    eligible          Bool                   COMMENT 'an account of this colour may borrow',
    credit_multiplier Float64                COMMENT 'multiplier on the normal credit limit',
    rate_cut_bp       Float64                COMMENT 'interest rate cut, basis points',
    source            String                 COMMENT 'where the terms come from',
    version           LowCardinality(String) COMMENT 'version of the terms',
    updated_at        DateTime64(3, 'UTC')   DEFAULT now64(3) COMMENT 'version: the latest wins'
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (product_id, colour)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'green loan products and their terms per colour; read with FINAL';

INSERT INTO loan_products
    (product_id, name, lender, area, colour, eligible, credit_multiplier, rate_cut_bp,
     source, version, updated_at)
SELECT *
FROM values(
    'product_id String, name String, lender String, area String, colour String,
     eligible Bool, credit_multiplier Float64, rate_cut_bp Float64, source String,
     version String, updated_at DateTime64(3, \'UTC\')',
    ('industrial-carbon-reduction-loan', 'Industrial Carbon Reduction Loan', 'default',
     'industry', 'dark_green', true, 1.5, 50, 'default rule, shared/domain/README.md', 'default-1', '2026-01-01 00:00:00'),
    ('industrial-carbon-reduction-loan', 'Industrial Carbon Reduction Loan', 'default',
     'industry', 'light_green', true, 1.2, 25, 'default rule, shared/domain/README.md', 'default-1', '2026-01-01 00:00:00'),
    ('industrial-carbon-reduction-loan', 'Industrial Carbon Reduction Loan', 'default',
     'industry', 'yellow', true, 1.0, 0, 'default rule, shared/domain/README.md', 'default-1', '2026-01-01 00:00:00'),
    ('industrial-carbon-reduction-loan', 'Industrial Carbon Reduction Loan', 'default',
     'industry', 'red', false, 0, 0, 'default rule, shared/domain/README.md', 'default-1', '2026-01-01 00:00:00')
)
WHERE (SELECT count() FROM loan_products) = 0;
