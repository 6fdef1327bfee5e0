-- emissions_15m.utc_offset_minutes: the local calendar of the rollups (050_rollups.sql).
-- Stores created before it have the table without the column: add it. Rows written
-- before keep the DEFAULT 0 (UTC days) until the sink writes them again (a replay).
ALTER TABLE emissions_15m
    ADD COLUMN IF NOT EXISTS utc_offset_minutes Int16 DEFAULT 0 COMMENT 'offset of the account''s local calendar at window_start (written by the sink from the registry); local time = window_start + offset' AFTER revision;
