-- 008_trace.sql: what the fold did with each record, for `aiworker-events trace` (app/trace.py).
-- Written in the fold's transaction, one multi-row INSERT per table and batch (streams/uow.py), so a trace
-- never shows an outcome whose rows did not commit. Kept AIWORKER_TRACE_RETENTION_SECONDS (default 7 days),
-- deleted in batches by the sweeper (db/trace.py); the rows themselves are not the fold's state.

-- One row per work item the fold handled: an event (or one half of a split event), a Gitea delivery, a log
-- record, or an undecodable record. `outcome`: applied, unchanged, ignored, refused, invalid, duplicate, parked
-- (and expired: parked longer than PARK_SECONDS, dead-lettered by the sweeper). `dlq_id`: the dlq record it made.
CREATE TABLE fold_outcomes (
  id BIGINT NOT NULL AUTO_INCREMENT,
  event_id VARCHAR(191) NULL,
  scope VARCHAR(16) NULL,
  event_type VARCHAR(100) NULL,
  delivery_id VARCHAR(191) NULL,
  origin VARCHAR(16) NULL,
  task_id VARCHAR(36) NULL,
  agent_id VARCHAR(36) NULL,
  source_topic VARCHAR(249) NOT NULL,
  source_partition INT NOT NULL,
  source_offset BIGINT NOT NULL,
  received_at DATETIME(3) NULL,
  outcome VARCHAR(16) NOT NULL,
  reason VARCHAR(512) NULL,
  dlq_id VARCHAR(64) NULL,
  folded_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  INDEX idx_fold_outcomes_event (event_id),
  INDEX idx_fold_outcomes_delivery (delivery_id),
  INDEX idx_fold_outcomes_task (task_id),
  INDEX idx_fold_outcomes_agent (agent_id),
  INDEX idx_fold_outcomes_folded_at (folded_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per transition the fold (or the sweeper) emitted: its CloudEvent id, the event that caused it
-- (`cause_id`: the event id, as in the CloudEvent's data.cause.id) and the change.
CREATE TABLE fold_transitions (
  id BIGINT NOT NULL AUTO_INCREMENT,
  transition_id VARCHAR(64) NOT NULL,
  cause_id VARCHAR(191) NOT NULL,
  entity VARCHAR(16) NOT NULL,
  entity_id VARCHAR(191) NOT NULL,
  from_state VARCHAR(32) NULL,
  to_state VARCHAR(32) NOT NULL,
  folded_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  INDEX idx_fold_transitions_cause (cause_id),
  INDEX idx_fold_transitions_entity (entity_id),
  INDEX idx_fold_transitions_folded_at (folded_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
