-- What-if (carbon-accounts whatif): emissions per labelled account and local month, from
-- the latest revision of every window (FINAL), since {since}. Residents (daily_life) are
-- not labelled. Months follow {timezone} (the city's calendar).
SELECT
    e.account_id                                                  AS account_id,
    formatDateTime(toTimeZone(e.window_start, {timezone:String}), '%Y-%m') AS month,
    sum(e.tco2e)                                                  AS tco2e
FROM emissions_15m AS e FINAL
WHERE e.window_start >= {since:DateTime64(3, 'UTC')}
  AND e.account_id IN (SELECT account_id FROM accounts FINAL WHERE area != 'daily_life')
GROUP BY account_id, month
ORDER BY account_id, month
