-- Per enterprise: current colour, trailing-12-month emissions and intensity, K against the
-- industry benchmark, and the credit-limit multiplier and rate cut of each loan product.
-- Intensity = tCO2e of the 12 months before as_of / the denominators whose periods lie
-- inside them; the benchmark is the latest one that started by as_of for the account's
-- area, industry and region; K = intensity / benchmark. Colour: the latest label by as_of.
-- @param as_of = now: the end of the trailing 12 months (RFC 3339, with offset)
-- @param area = industry: accounts of this area
-- @section eligibility
SELECT
    a.account_id AS account_id,
    a.name AS name,
    a.industry_code AS industry_code,
    l.colour AS colour,
    round(e.tco2e_12m, 6) AS tco2e_12m,
    d.denominator_12m AS denominator_12m,
    a.denominator_unit AS denominator_unit,
    round(if(d.denominator_12m > 0, e.tco2e_12m / d.denominator_12m, NULL), 6) AS intensity,
    b.benchmark AS benchmark,
    round(if(b.benchmark > 0, e.tco2e_12m / d.denominator_12m / b.benchmark, NULL), 4) AS k,
    p.product_id AS product_id,
    p.eligible AS eligible,
    p.credit_multiplier AS credit_multiplier,
    p.rate_cut_bp AS rate_cut_bp
FROM (SELECT * FROM accounts FINAL WHERE area = {area:String}) AS a
LEFT JOIN
(
    SELECT account_id, argMax(new_colour, revision) AS colour
    FROM account_labels
    WHERE ts <= {as_of:DateTime64(3, 'UTC')}
    GROUP BY account_id
) AS l ON l.account_id = a.account_id
LEFT JOIN
(
    SELECT account_id, sum(tco2e) AS tco2e_12m
    FROM emissions_15m FINAL
    WHERE window_start >= {as_of:DateTime64(3, 'UTC')} - toIntervalMonth(12)
      AND window_start < {as_of:DateTime64(3, 'UTC')}
    GROUP BY account_id
) AS e ON e.account_id = a.account_id
LEFT JOIN
(
    SELECT account_id, sum(value) AS denominator_12m
    FROM denominators FINAL
    WHERE period_start >= {as_of:DateTime64(3, 'UTC')} - toIntervalMonth(12)
      AND period_end <= {as_of:DateTime64(3, 'UTC')}
    GROUP BY account_id
) AS d ON d.account_id = a.account_id
LEFT JOIN
(
    SELECT area, industry_code, region, argMax(value, period_start) AS benchmark
    FROM benchmarks FINAL
    WHERE period_start <= {as_of:DateTime64(3, 'UTC')}
    GROUP BY area, industry_code, region
) AS b ON b.area = a.area AND b.industry_code = a.industry_code AND b.region = a.region
LEFT JOIN loan_terms AS p ON p.colour = l.colour AND p.area = a.area
ORDER BY account_id, product_id
SETTINGS join_use_nulls = 1
