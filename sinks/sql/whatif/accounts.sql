-- What-if: the labelled accounts (the latest registry entry of each).
SELECT account_id, area, industry_code, region, timezone
FROM accounts FINAL
WHERE area != 'daily_life'
ORDER BY account_id
