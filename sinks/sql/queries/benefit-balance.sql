-- A person's carbon-benefit points by local month and behaviour, and the total.
-- @param account_id: the person
-- @param tz = $timezone: time zone of the calendar months
-- @section by_month
SELECT
    toStartOfMonth(toDate(ts, {tz:String})) AS month,
    behaviour,
    count() AS events,
    round(sum(quantity), 6) AS quantity,
    round(sum(reduction_g), 3) AS reduction_g,
    round(sum(points), 3) AS points
FROM benefit_points FINAL
WHERE account_id = {account_id:String}
GROUP BY month, behaviour
ORDER BY month, behaviour;

-- @section total
SELECT count() AS events, round(sum(reduction_g), 3) AS reduction_g, round(sum(points), 3) AS points
FROM benefit_points FINAL
WHERE account_id = {account_id:String}
