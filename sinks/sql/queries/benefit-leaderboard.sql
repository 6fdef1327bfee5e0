-- The top people of a district by carbon-benefit points between two local days (inclusive).
-- @param district: the district
-- @param from_date: first local day (YYYY-MM-DD)
-- @param to_date: last local day (YYYY-MM-DD)
-- @param limit = 10: how many people
-- @param tz = $timezone: time zone of the calendar days
-- @section leaderboard
SELECT
    row_number() OVER (ORDER BY points DESC, account_id) AS rank,
    account_id,
    round(sum(points), 3) AS points,
    round(sum(reduction_g), 3) AS reduction_g,
    count() AS events
FROM benefit_points FINAL
WHERE district = {district:String}
  AND toDate(ts, {tz:String}) >= {from_date:Date}
  AND toDate(ts, {tz:String}) <= {to_date:Date}
GROUP BY account_id
ORDER BY points DESC, account_id
LIMIT {limit:UInt32}
