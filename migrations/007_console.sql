-- 007_console.sql: the operator console (webhooks/console/, db/console.py) shows a task's transitions from the
-- outbox rows about it (message_key is the entity id; published rows are kept for an hour by the relay's prune).
-- Without this index that read scans the whole outbox; with it, it reads the task's rows only, in order.
ALTER TABLE outbox
  ADD INDEX idx_outbox_key (message_key, id);
