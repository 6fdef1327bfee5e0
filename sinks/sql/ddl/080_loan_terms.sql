-- The current terms of every loan product per colour: loan_products read with FINAL, so
-- the latest version of each (product, colour) wins. The catalogue queries and the
-- loan-eligibility dashboard panel all read the rule here, joined on (colour, area).
CREATE OR REPLACE VIEW loan_terms
(
    product_id        String  COMMENT 'product id',
    name              String  COMMENT 'product name',
    lender            String  COMMENT 'bank or institution offering it',
    area              String  COMMENT 'area of the accounts it is for',
    colour            String  COMMENT 'colour this row applies to',
    eligible          Bool    COMMENT 'an account of this colour may borrow',
    credit_multiplier Float64 COMMENT 'multiplier on the normal credit limit',
    rate_cut_bp       Float64 COMMENT 'interest rate cut, basis points',
    version           String  COMMENT 'version of the terms'
)
AS SELECT
    product_id,
    name,
    lender,
    area,
    colour,
    eligible,
    credit_multiplier,
    rate_cut_bp,
    version
FROM loan_products FINAL
COMMENT 'current loan terms per product and colour (loan_products FINAL)';
