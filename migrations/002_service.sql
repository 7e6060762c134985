-- 002_service.sql: what aiworker-events needs beyond the seed schema (see shared/CONTRACT.md).

-- Gitea issues labelled `aiworker` become backlog tasks; the issue number is kept in a column of
-- its own so that later issue events (closed, edited) find the task again.
ALTER TABLE tasks
  ADD COLUMN gitea_issue_number INT NULL AFTER pr_url,
  ADD INDEX idx_tasks_project_issue (project_id, gitea_issue_number);

-- Claiming the next backlog task (db/queries.py next_available_task) orders by priority DESC,
-- created_at ASC under FOR UPDATE SKIP LOCKED. With this index the rows are read in that order
-- and the scan stops at the first unlocked one; without it the server sorts every backlog row
-- of the project first, and FOR UPDATE then locks all of them, so concurrent claimers would skip
-- every task instead of just the one being claimed.
ALTER TABLE tasks
  ADD INDEX idx_tasks_claim (project_id, state, priority DESC, created_at);

-- Per-project webhook secret with rotation: during a rotation the previous secret stays valid
-- for a while after gitea_webhook_secret_rotated_at. Webhooks find their project by repository
-- id, else by owner/name: both lookups are indexed.
ALTER TABLE projects
  ADD COLUMN gitea_webhook_secret VARCHAR(255) NULL AFTER default_branch,
  ADD COLUMN gitea_webhook_secret_previous VARCHAR(255) NULL AFTER gitea_webhook_secret,
  ADD COLUMN gitea_webhook_secret_rotated_at TIMESTAMP NULL AFTER gitea_webhook_secret_previous,
  ADD INDEX idx_projects_gitea_repo_id (gitea_repo_id),
  ADD INDEX idx_projects_gitea_owner_repo (gitea_owner, gitea_repo_name);

-- The fold's stored input positions: the next offset to read per (consumer, topic, partition),
-- written in the same transaction as the rows the fold derived from the records before it.
CREATE TABLE fold_positions (
  consumer VARCHAR(100) NOT NULL,
  topic VARCHAR(249) NOT NULL,
  `partition` INT NOT NULL,
  next_offset BIGINT NOT NULL,
  updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (consumer, topic, `partition`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Event-id de-duplication: an input event whose id is here has already been folded (a producer
-- may send the same event twice, at different offsets). Old rows may be purged by processed_at.
CREATE TABLE processed_events (
  event_id VARCHAR(191) NOT NULL,
  topic VARCHAR(249) NULL,
  `partition` INT NULL,
  `offset` BIGINT NULL,
  processed_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (event_id),
  INDEX idx_processed_events_processed_at (processed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Transactional outbox: downstream CloudEvents written in the fold's transaction and published
-- to Kafka afterwards (published_at set once the broker acknowledged). event_id is the
-- CloudEvent id, derived from the cause, so a replay cannot enqueue the same event twice.
-- payload holds the JSON bytes exactly as they will be produced.
CREATE TABLE outbox (
  id BIGINT NOT NULL AUTO_INCREMENT,
  event_id VARCHAR(191) NOT NULL,
  topic VARCHAR(249) NOT NULL,
  message_key VARCHAR(255) NOT NULL,
  payload LONGBLOB NOT NULL,
  created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  published_at TIMESTAMP(3) NULL DEFAULT NULL,
  PRIMARY KEY (id),
  CONSTRAINT uq_outbox_event_id UNIQUE (event_id),
  INDEX idx_outbox_unpublished (published_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
