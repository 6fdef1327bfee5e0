-- The accounts that emitted most between two local days (inclusive), optionally of one area.
-- @param from_date: first local day (YYYY-MM-DD)
-- @param to_date: last local day (YYYY-MM-DD)
-- @param limit = 10: how many accounts
-- @param area = : only this area (empty: all)
-- @section top
SELECT
    row_number() OVER (ORDER BY e.tco2e DESC, e.account_id) AS rank,
    e.account_id AS account_id,
    a.name AS name,
    a.area AS area,
    a.industry_code AS industry_code,
    round(e.tco2e, 6) AS tco2e
FROM
(
    SELECT account_id, sum(tco2e) AS tco2e
    FROM emissions_daily
    WHERE day >= {from_date:Date} AND day <= {to_date:Date}
    GROUP BY account_id
) AS e
LEFT JOIN (SELECT account_id, name, area, industry_code FROM accounts FINAL) AS a
    ON a.account_id = e.account_id
WHERE {area:String} = '' OR a.area = {area:String}
ORDER BY e.tco2e DESC, e.account_id
LIMIT {limit:UInt32}
