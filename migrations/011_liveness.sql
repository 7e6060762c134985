-- 011_liveness.sql: liveness by the stream's clock (issue 12, point 10). `last_heartbeat` is the agent's own
-- clock (the event's `time`); `last_seen_at` is when its newest heartbeat or registration was received, by the
-- ingest clock (the record's broker timestamp, stamped by the web or the broker), and `last_seen_partition` the
-- agent.events partition it arrived on: the sweeper compares an agent's `last_seen_at` with the newest one of
-- its partition (how far the fold has read that partition), so an agent's wrong clock or a lagging fold never
-- marks it offline. The columns go last (an instant ADD COLUMN on MySQL 8 and MariaDB).
ALTER TABLE agents
  ADD COLUMN last_seen_at TIMESTAMP(3) NULL DEFAULT NULL,
  ADD COLUMN last_seen_partition INT NULL DEFAULT NULL;
