-- What-if: the denominators of the labelled accounts (the latest version of each period).
SELECT account_id, period_start, period_end, value
FROM denominators FINAL
WHERE account_id IN (SELECT account_id FROM accounts FINAL WHERE area != 'daily_life')
ORDER BY account_id, period_start
