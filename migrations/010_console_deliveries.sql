-- 010_console_deliveries.sql: the console's deliveries page (webhooks/console/, db/console.py) lists the fold's
-- outcome rows of Gitea deliveries (008_trace.sql, 009_trace_lean.sql), newest first, searchable by delivery id (its own index, 008),
-- repository, event type and outcome, a page of 50 by keyset on id. `repository` is the delivery's repository full
-- name as the web read it (the record key), written by the fold with the row (streams/tracing.py); NULL for every
-- other work item and for rows written before this migration. Each index starts with what the page filters on and
-- ends with id, so the newest page is an index range read backwards, whatever the table's size:
--   origin (delivery or reconcile; NULL for other work items), then id: the unfiltered list;
--   repository, id: a filter on the repository.
-- Only two: every secondary index is a write per folded record (009 removed two for that). A filter on the event
-- type or the outcome alone reads a bounded window of the origin index per page instead (db/console.py).
-- The task page reads its transitions from fold_transitions now (as `trace` does), so the outbox index of 007 goes.
ALTER TABLE fold_outcomes
  ADD COLUMN repository VARCHAR(255) NULL DEFAULT NULL,
  ADD INDEX idx_fold_outcomes_origin (origin, id),
  ADD INDEX idx_fold_outcomes_repository (repository, id);
ALTER TABLE outbox
  DROP INDEX idx_outbox_key;
