-- 005_reconcile.sql: `aiworker-events reconcile` reads Gitea's REST API for what its webhooks could not deliver
-- (app/reconcile.py). Per project: the time of the last successful run (the next run lists pull requests and
-- issues updated since then, less an overlap), and when and how the last run went, for operators.
-- Not a fold product: replaying the topics into an empty database leaves it empty, and the next run then
-- looks at the whole history once.
CREATE TABLE reconcile_state (
  project_id VARCHAR(36) NOT NULL,
  last_reconciled_at TIMESTAMP(3) NULL DEFAULT NULL,
  last_run_at TIMESTAMP(3) NULL DEFAULT NULL,
  last_error VARCHAR(1024) NULL DEFAULT NULL,
  records_published BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (project_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
