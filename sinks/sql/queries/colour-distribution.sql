-- How many accounts held each colour at the end of each local month from from_date's
-- month to to_date's month: each account's latest label evaluated before the month ended.
-- Accounts whose label was withdrawn, or that had none yet, are not counted.
-- @param from_date: a day of the first month (YYYY-MM-DD)
-- @param to_date: a day of the last month (YYYY-MM-DD)
-- @param area = : only this area (empty: all)
-- @param tz = $timezone: time zone of the calendar months
-- @section distribution
SELECT month, colour, count() AS accounts
FROM
(
    SELECT m AS month, account_id, argMax(new_colour, revision) AS colour
    FROM account_labels
    ARRAY JOIN arrayMap(
        i -> addMonths(toStartOfMonth({from_date:Date}), i),
        range(toUInt32(dateDiff('month', toStartOfMonth({from_date:Date}),
                                toStartOfMonth({to_date:Date})) + 1))
    ) AS m
    WHERE toDate(ts, {tz:String}) < addMonths(m, 1)
      AND ({area:String} = '' OR area = {area:String})
    GROUP BY month, account_id
)
WHERE colour IS NOT NULL
GROUP BY month, colour
ORDER BY month, colour
