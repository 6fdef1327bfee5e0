-- The sink's insert_deduplication_token works on non-replicated tables only with a
-- deduplication window; stores created before the baseline have tables without it, so a
-- retried batch could be stored twice. Setting it again is harmless.
ALTER TABLE emissions_15m MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE accounts MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE denominators MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE benchmarks MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE emission_factors MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE account_labels MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE benefit_points MODIFY SETTING non_replicated_deduplication_window = 1000;
