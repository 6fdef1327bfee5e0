-- The bookkeeping of sinks/migrations.py: which schema migrations this database has had.
-- Not itself a migration: it must exist before the first one runs.
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32               COMMENT 'migration number: 0 the views, 1 the baseline (sinks/sql/ddl), then sinks/sql/migrations/NNNN_*.sql',
    name       String               COMMENT 'migration name, from its file name',
    checksum   String               COMMENT 'sha256 of its statements, comments and blank space left out',
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'when it was applied'
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
COMMENT 'schema migrations applied to this database (carbon-accounts store status)';
