-- The carbon credit report of one account: who it is and its colour, emissions by month
-- and energy type, the intensity trend, the colour history with reasons, where its
-- trailing-12-month intensity stands in its industry, and the loan products it can get.
-- Months are local calendar months (tz). better_than_pct: share of the other accounts of
-- the same area and industry whose trailing-12-month intensity is higher.
-- @param account_id: the account
-- @param as_of = now: the report's date (RFC 3339, with offset)
-- @param tz = $timezone: time zone of the calendar months
-- @section account
SELECT
    a.account_id AS account_id,
    a.name AS name,
    a.area AS area,
    a.industry_code AS industry_code,
    a.region AS region,
    a.district AS district,
    a.denominator_unit AS denominator_unit,
    l.colour AS colour,
    l.k AS k,
    l.reason AS reason,
    l.label_ts AS label_ts
FROM (SELECT * FROM accounts FINAL WHERE account_id = {account_id:String}) AS a
LEFT JOIN
(
    SELECT
        account_id,
        argMax(new_colour, revision) AS colour,
        argMax(k, revision) AS k,
        argMax(reason, revision) AS reason,
        argMax(ts, revision) AS label_ts
    FROM account_labels
    WHERE account_id = {account_id:String} AND ts <= {as_of:DateTime64(3, 'UTC')}
    GROUP BY account_id
) AS l ON l.account_id = a.account_id
SETTINGS join_use_nulls = 1;

-- @section emissions_by_month
SELECT month, energy_type, round(consumption, 6) AS consumption, unit, round(tco2e, 6) AS tco2e
FROM emissions_monthly
WHERE account_id = {account_id:String}
  AND month > addMonths(toStartOfMonth(toDate({as_of:DateTime64(3, 'UTC')}, {tz:String})), -12)
  AND month <= toStartOfMonth(toDate({as_of:DateTime64(3, 'UTC')}, {tz:String}))
ORDER BY month, energy_type;

-- @section intensity_trend
SELECT
    m.month AS month,
    round(m.tco2e, 6) AS tco2e,
    d.denominator AS denominator,
    round(if(d.denominator > 0, m.tco2e / d.denominator, NULL), 6) AS intensity
FROM
(
    SELECT month, sum(tco2e) AS tco2e
    FROM emissions_monthly
    WHERE account_id = {account_id:String}
      AND month > addMonths(toStartOfMonth(toDate({as_of:DateTime64(3, 'UTC')}, {tz:String})), -12)
      AND month <= toStartOfMonth(toDate({as_of:DateTime64(3, 'UTC')}, {tz:String}))
    GROUP BY month
) AS m
LEFT JOIN
(
    SELECT toStartOfMonth(toDate(period_start, {tz:String})) AS month, sum(value) AS denominator
    FROM denominators FINAL
    WHERE account_id = {account_id:String}
    GROUP BY month
) AS d ON d.month = m.month
ORDER BY month
SETTINGS join_use_nulls = 1;

-- @section colour_history
SELECT ts, old_colour, new_colour, k, intensity, benchmark, benchmark_version, reason, revision
FROM account_labels FINAL
WHERE account_id = {account_id:String} AND ts <= {as_of:DateTime64(3, 'UTC')}
ORDER BY revision;

-- @section industry_percentile
WITH peers AS
(
    SELECT e.account_id AS account_id, e.tco2e / d.denominator AS intensity
    FROM
    (
        SELECT account_id, sum(tco2e) AS tco2e
        FROM emissions_15m FINAL
        WHERE window_start >= {as_of:DateTime64(3, 'UTC')} - toIntervalMonth(12)
          AND window_start < {as_of:DateTime64(3, 'UTC')}
          AND account_id IN
          (
              SELECT account_id FROM accounts FINAL
              WHERE (area, industry_code) IN
                  (SELECT area, industry_code FROM accounts FINAL
                   WHERE account_id = {account_id:String})
          )
        GROUP BY account_id
    ) AS e
    INNER JOIN
    (
        SELECT account_id, sum(value) AS denominator
        FROM denominators FINAL
        WHERE period_start >= {as_of:DateTime64(3, 'UTC')} - toIntervalMonth(12)
          AND period_end <= {as_of:DateTime64(3, 'UTC')}
        GROUP BY account_id
        HAVING denominator > 0
    ) AS d ON d.account_id = e.account_id
)
SELECT
    round(any(own.intensity), 6) AS intensity,
    count() AS peers,
    countIf(p.intensity > own.intensity) AS peers_higher,
    if(count() > 1, round(100 * countIf(p.intensity > own.intensity) / (count() - 1), 1), NULL)
        AS better_than_pct
FROM peers AS p
CROSS JOIN (SELECT intensity FROM peers WHERE account_id = {account_id:String}) AS own;

-- @section eligible_products
SELECT product_id, name, lender, credit_multiplier, rate_cut_bp
FROM loan_terms
WHERE eligible
  AND area = (SELECT any(area) FROM accounts FINAL WHERE account_id = {account_id:String})
  AND colour =
  (
      SELECT argMax(new_colour, revision) FROM account_labels
      WHERE account_id = {account_id:String} AND ts <= {as_of:DateTime64(3, 'UTC')}
  )
ORDER BY product_id
