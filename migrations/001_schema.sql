-- 001_schema.sql: the seed schema (shared/seeds/001 "Modelo de Datos", cross-checked with the
-- Drizzle schema in shared/seeds/000), written so that MySQL 8 and MariaDB 10.11 both run it.
--
-- Portability notes (every deviation from the seed is listed here and next to its statement):
--  * Timestamps keep the seed's TIMESTAMP type. Columns that the seed declares without NOT NULL
--    are written `TIMESTAMP NULL ...` explicitly, so they are nullable on every server whatever
--    its explicit_defaults_for_timestamp setting.
--  * Constraints and FKs carry explicit names (fk_<table>_<column>) so that later migrations and
--    the tests can refer to them; the seed left them to the server's naming.
--  * The tasks <-> agents foreign-key cycle (tasks.assigned_agent_id -> agents,
--    agents.current_task_id -> tasks): agents is created without its FK, tasks next, and the
--    agents FK is added with ALTER TABLE at the end.
--  * The seed's partial index idx_agents_available ... WHERE status = 'idle' and the monthly
--    partitioning of agent_logs cannot be expressed; see the notes at the end of this file.
--
-- The runner (db/migrate.py) splits this file on semicolons at the end of a line and skips lines
-- starting with "--"; do not put a semicolon at the end of a line inside a statement.

CREATE TABLE projects (
  id VARCHAR(36) NOT NULL,
  name VARCHAR(255) NOT NULL,
  description TEXT,
  -- Gitea integration
  gitea_repo_id INT,
  gitea_repo_url VARCHAR(512),
  gitea_owner VARCHAR(100),
  gitea_repo_name VARCHAR(100),
  default_branch VARCHAR(100) DEFAULT 'main',
  -- Kubernetes
  k8s_namespace VARCHAR(63) NOT NULL,
  -- Infrastructure config (JSON)
  docker_image VARCHAR(512),
  env_vars JSON,
  replicas INT DEFAULT 1,
  cpu_limit VARCHAR(20) DEFAULT '500m',
  memory_limit VARCHAR(20) DEFAULT '512Mi',
  -- MCP config (JSON)
  mcp_tools JSON,
  mcp_permissions JSON,
  -- Status
  status ENUM('active', 'paused', 'archived') DEFAULT 'active',
  -- Timestamps
  created_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  CONSTRAINT uq_projects_k8s_namespace UNIQUE (k8s_namespace),
  INDEX idx_status (status),
  -- Kept as in the seed although the UNIQUE key above already indexes the column.
  INDEX idx_k8s_namespace (k8s_namespace)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- agents before tasks: its FK to tasks (current_task_id) is added at the end of this file.
CREATE TABLE agents (
  id VARCHAR(36) NOT NULL,
  -- K8s info
  pod_name VARCHAR(253) NOT NULL,
  k8s_namespace VARCHAR(63) DEFAULT 'agents',
  node_name VARCHAR(253),
  -- Status
  status ENUM('idle', 'busy', 'error', 'offline', 'initializing') DEFAULT 'initializing',
  current_task_id VARCHAR(36),
  -- Capabilities: ['javascript', 'python', 'react', ...]
  capabilities JSON,
  max_concurrent_tasks INT DEFAULT 1,
  -- Health
  last_heartbeat TIMESTAMP NULL,
  error_message TEXT,
  restarts_count INT DEFAULT 0,
  -- Metrics
  tasks_completed INT DEFAULT 0,
  total_runtime_minutes INT DEFAULT 0,
  -- Timestamps
  created_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  CONSTRAINT uq_agents_pod_name UNIQUE (pod_name),
  INDEX idx_status (status),
  -- Kept as in the seed although the UNIQUE key above already indexes the column.
  INDEX idx_pod_name (pod_name),
  INDEX idx_last_heartbeat (last_heartbeat),
  -- Not in the seed: the index the FK fk_agents_current_task needs, named explicitly so both
  -- servers end up with the same index name.
  INDEX idx_current_task (current_task_id),
  -- Seed "Índices Compuestos": CREATE INDEX idx_agents_available ON agents(status, last_heartbeat)
  -- WHERE status = 'idle'. Neither MySQL 8 nor MariaDB has partial (filtered) indexes, so this is
  -- the plain composite index; with the equality on status first it serves the same query
  -- (status = 'idle' AND last_heartbeat > ?) as a range scan over the 'idle' entries only.
  INDEX idx_agents_available (status, last_heartbeat)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE tasks (
  id VARCHAR(36) NOT NULL,
  project_id VARCHAR(36) NOT NULL,
  -- Task info
  title VARCHAR(255) NOT NULL,
  description TEXT,
  -- ENUM values sort by their position: ORDER BY priority DESC puts 'urgent' first.
  priority ENUM('low', 'medium', 'high', 'urgent') DEFAULT 'medium',
  -- State machine
  state ENUM('backlog', 'in_progress', 'needs_input', 'ready_to_test', 'approved', 'staging', 'production', 'cancelled') DEFAULT 'backlog',
  -- Assignment
  assigned_agent_id VARCHAR(36),
  assigned_at TIMESTAMP NULL,
  -- Git info
  branch_name VARCHAR(255),
  pr_number INT,
  pr_url VARCHAR(512),
  -- Preview deployment
  preview_namespace VARCHAR(63),
  preview_url VARCHAR(512),
  preview_deployed_at TIMESTAMP NULL,
  -- Metadata
  estimated_complexity ENUM('trivial', 'simple', 'medium', 'complex') DEFAULT 'medium',
  actual_duration_minutes INT,
  -- Timestamps
  created_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  started_at TIMESTAMP NULL,
  completed_at TIMESTAMP NULL,
  deployed_staging_at TIMESTAMP NULL,
  deployed_production_at TIMESTAMP NULL,
  PRIMARY KEY (id),
  CONSTRAINT fk_tasks_project FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
  CONSTRAINT fk_tasks_assigned_agent FOREIGN KEY (assigned_agent_id) REFERENCES agents (id) ON DELETE SET NULL,
  -- The seed's SQL has idx_project_state (project_id, state); its Drizzle schema adds created_at.
  -- Kept as in the SQL; the three-column variant is idx_tasks_project_state below.
  INDEX idx_project_state (project_id, state),
  INDEX idx_state (state),
  INDEX idx_assigned_agent (assigned_agent_id),
  INDEX idx_created_at (created_at),
  -- Seed "Índices Compuestos": tasks of a project by state, oldest first.
  INDEX idx_tasks_project_state (project_id, state, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE task_questions (
  id VARCHAR(36) NOT NULL,
  task_id VARCHAR(36) NOT NULL,
  -- Question
  question TEXT NOT NULL,
  context TEXT,
  asked_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  -- Response
  response TEXT,
  responded_at TIMESTAMP NULL,
  responded_by VARCHAR(36),
  -- Status
  status ENUM('pending', 'answered', 'skipped') DEFAULT 'pending',
  PRIMARY KEY (id),
  CONSTRAINT fk_task_questions_task FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE,
  INDEX idx_task_status (task_id, status),
  INDEX idx_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE task_groups (
  id VARCHAR(36) NOT NULL,
  project_id VARCHAR(36) NOT NULL,
  -- Grouping: ['task-id-1', 'task-id-2', ...]
  task_ids JSON NOT NULL,
  -- Staging
  staging_branch VARCHAR(255),
  staging_pr_number INT,
  staging_pr_url VARCHAR(512),
  staging_deployed_at TIMESTAMP NULL,
  -- Production
  production_deployed_at TIMESTAMP NULL,
  production_rollback_available BOOLEAN DEFAULT TRUE,
  -- Status
  status ENUM('pending', 'staging', 'production', 'rolled_back') DEFAULT 'pending',
  -- Metadata
  created_by VARCHAR(36),
  notes TEXT,
  -- Timestamps
  created_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  CONSTRAINT fk_task_groups_project FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
  INDEX idx_project_status (project_id, status),
  INDEX idx_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE deployments (
  id VARCHAR(36) NOT NULL,
  project_id VARCHAR(36) NOT NULL,
  task_group_id VARCHAR(36),
  -- Deployment info
  environment ENUM('preview', 'staging', 'production') NOT NULL,
  deployment_type ENUM('manual', 'automatic', 'rollback') DEFAULT 'manual',
  -- Git info
  branch VARCHAR(255),
  commit_hash VARCHAR(40),
  -- K8s info
  k8s_namespace VARCHAR(63),
  k8s_deployment_name VARCHAR(253),
  image_tag VARCHAR(255),
  -- Status
  status ENUM('pending', 'in_progress', 'completed', 'failed', 'rolled_back') DEFAULT 'pending',
  -- Results
  url VARCHAR(512),
  error_message TEXT,
  logs TEXT,
  -- Timing
  started_at TIMESTAMP NULL,
  completed_at TIMESTAMP NULL,
  duration_seconds INT,
  -- Metadata
  triggered_by VARCHAR(36),
  -- Timestamps
  created_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  CONSTRAINT fk_deployments_project FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
  CONSTRAINT fk_deployments_task_group FOREIGN KEY (task_group_id) REFERENCES task_groups (id) ON DELETE SET NULL,
  INDEX idx_project_env (project_id, environment),
  INDEX idx_status (status),
  INDEX idx_created_at (created_at),
  -- Not in the seed: the index the FK fk_deployments_task_group needs, named explicitly.
  INDEX idx_task_group (task_group_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- agent_logs: NOT partitioned (adaptation of the seed's "Particionamiento (para logs)").
-- The seed partitions agent_logs by month with
--   PARTITION BY RANGE (YEAR(created_at) * 100 + MONTH(created_at)).
-- That cannot be kept together with the rest of the seed on InnoDB:
--   * MySQL 8 and MariaDB refuse foreign keys on partitioned tables (and FKs referencing them),
--     and agent_logs has two (agent_id -> agents ON DELETE CASCADE, task_id -> tasks SET NULL);
--   * every unique key, including the PRIMARY KEY (id), must contain the partitioning column,
--     so the PK would have to become (id, created_at);
--   * YEAR()/MONTH() on a TIMESTAMP column is not an allowed partitioning function (the value
--     depends on the session time zone); it would need UNIX_TIMESTAMP(created_at) ranges.
-- Decision: keep the FKs and the single-column PK, and leave the table unpartitioned. Retention
-- is done by deleting old rows in small batches through idx_created_at, e.g.
--   DELETE FROM agent_logs WHERE created_at < NOW() - INTERVAL 90 DAY ORDER BY created_at LIMIT 10000
-- repeated until it affects no row (short transactions, no long locks, replication friendly).
-- Alternative, if the log volume ever makes batched deletes too slow: drop both FKs from
-- agent_logs (enforce them in the application), make the PK (id, created_at), partition by
-- RANGE (UNIX_TIMESTAMP(created_at)) per month, and expire data with ALTER TABLE ... DROP
-- PARTITION, with a job that adds next month's partition ahead of time.
CREATE TABLE agent_logs (
  id BIGINT NOT NULL AUTO_INCREMENT,
  agent_id VARCHAR(36) NOT NULL,
  task_id VARCHAR(36),
  -- Log entry
  level ENUM('debug', 'info', 'warn', 'error') DEFAULT 'info',
  message TEXT NOT NULL,
  metadata JSON,
  -- Timestamp
  created_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  CONSTRAINT fk_agent_logs_agent FOREIGN KEY (agent_id) REFERENCES agents (id) ON DELETE CASCADE,
  CONSTRAINT fk_agent_logs_task FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE SET NULL,
  INDEX idx_agent_created (agent_id, created_at),
  INDEX idx_task_created (task_id, created_at),
  INDEX idx_level (level),
  -- Not in the seed: retention deletes (see above) scan by age.
  INDEX idx_created_at (created_at),
  -- Seed "Índices Compuestos": recent logs of an agent, newest first. Descending index parts
  -- are honoured by MySQL 8 and MariaDB >= 10.8 (older servers parse and ignore DESC).
  INDEX idx_agent_logs_recent (agent_id, created_at DESC) USING BTREE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Close the tasks <-> agents cycle: agents.current_task_id -> tasks.id (seed: ON DELETE SET NULL).
ALTER TABLE agents
  ADD CONSTRAINT fk_agents_current_task FOREIGN KEY (current_task_id) REFERENCES tasks (id) ON DELETE SET NULL;
