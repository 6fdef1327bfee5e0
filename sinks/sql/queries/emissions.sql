-- Emissions totals by period, area, industry and region between two local days
-- (inclusive). Accounts not yet in the registry show with an empty area.
-- @param from_date: first local day (YYYY-MM-DD)
-- @param to_date: last local day (YYYY-MM-DD)
-- @param period = month: day, month or year
-- @choices period: day, month, year
-- @section totals
SELECT
    multiIf({period:String} = 'day', d.day,
            {period:String} = 'year', toStartOfYear(d.day),
            toStartOfMonth(d.day)) AS period_start,
    a.area AS area,
    a.industry_code AS industry_code,
    a.region AS region,
    count(DISTINCT d.account_id) AS accounts,
    round(sum(d.tco2e), 6) AS tco2e
FROM emissions_daily AS d
LEFT JOIN (SELECT account_id, area, industry_code, region FROM accounts FINAL) AS a
    ON a.account_id = d.account_id
WHERE d.day >= {from_date:Date} AND d.day <= {to_date:Date}
GROUP BY period_start, area, industry_code, region
ORDER BY period_start, area, industry_code, region
