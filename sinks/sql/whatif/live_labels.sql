-- What-if: each account's live colour, from its latest label (highest revision).
SELECT account_id, argMax(new_colour, revision) AS colour
FROM account_labels FINAL
GROUP BY account_id
