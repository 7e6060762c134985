-- 003_fold.sql: what the complete fold needs (issue 4; see streams/fold.py and streams/parking.py).

-- Events whose prerequisite row is not there yet (a task.created before its project.upserted, a
-- task.started before its task.created: they travel on different partitions). They wait here and
-- are applied in the transaction that creates the row they wait for (waits_table, waits_id).
-- `entity` is the event's ordering key (task, agent, ...): a later event of the same entity parks
-- behind an earlier parked one, so an entity's events are still applied in order.
CREATE TABLE parked_events (
  id BIGINT NOT NULL AUTO_INCREMENT,
  waits_table VARCHAR(32) NOT NULL,
  waits_id VARCHAR(191) NOT NULL,
  entity VARCHAR(191) NOT NULL,
  event_id VARCHAR(191) NOT NULL,
  source_topic VARCHAR(249) NOT NULL,
  source_partition INT NOT NULL,
  source_offset BIGINT NOT NULL,
  source_key VARCHAR(255) NULL,
  payload LONGBLOB NOT NULL,
  reason VARCHAR(512) NOT NULL,
  parked_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  CONSTRAINT uq_parked_events_event UNIQUE (event_id),
  INDEX idx_parked_events_waits (waits_table, waits_id, id),
  INDEX idx_parked_events_entity (entity, id),
  INDEX idx_parked_events_parked_at (parked_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Log lines are de-duplicated by the position of the record that carried them, per agent, for
-- every consumer group alike: a replay from offset 0 (new group) inserts no line twice, and no
-- processed_events row is written per log line (agent_logs is the high-volume table).
CREATE TABLE log_positions (
  agent_id VARCHAR(36) NOT NULL,
  topic VARCHAR(249) NOT NULL,
  `partition` INT NOT NULL,
  next_offset BIGINT NOT NULL,
  PRIMARY KEY (agent_id, topic, `partition`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Refused events are remembered too (a replay must not apply an event that was refused the first
-- time): `outcome` tells them apart so a re-drive of the dlq can forget the refused ones first.
ALTER TABLE processed_events
  ADD COLUMN outcome ENUM('applied', 'refused') NOT NULL DEFAULT 'applied' AFTER `offset`;

-- Gitea deliveries find their task by branch name, else by PR number, within the project.
ALTER TABLE tasks
  ADD INDEX idx_tasks_project_branch (project_id, branch_name),
  ADD INDEX idx_tasks_project_pr (project_id, pr_number);
