-- 006_log_ids.sql: a log line is de-duplicated by its event id, not only by the position of the record that
-- carried it (streams/logs.py). An agent that retries a `log` after a timeout sends the same id in a new
-- request (a new record, a new offset); the web packs the same lines into a batch with the same id again.
-- event_id is the `log` event's id (a line of a log.batch keeps its own); lines written before this migration
-- have none (NULL, which a unique key lets repeat). Unique per agent: an id is its producer's.
-- The column goes last (an instant ADD COLUMN on MySQL 8 and MariaDB); the key is built online.
ALTER TABLE agent_logs
  ADD COLUMN event_id VARCHAR(191) NULL DEFAULT NULL,
  ADD UNIQUE KEY uq_agent_logs_event (agent_id, event_id);
