-- 012_log_index.sql (issue 17): agent_logs loses idx_agent_logs_recent, a second index over the columns of
-- idx_agent_created (agent_id, created_at), there in DESC order. Every query of agent_logs that filters by agent is
-- planned on idx_agent_created, which MariaDB 10.11 and MySQL 8 read backwards for the newest lines first (the
-- seed's "logs recientes por agente", `WHERE agent_id = ? ORDER BY created_at DESC LIMIT n`, and the console's
-- `ORDER BY created_at DESC, id DESC`); idx_agent_logs_recent is never chosen, and alone it would need a filesort for
-- the console's order (its primary key suffix runs ascending). Each secondary index is a write per log line
-- (docs/performance.md: EXPLAIN of each query and the insert cost of each index, `python -m bench dbcost`).
ALTER TABLE agent_logs DROP INDEX idx_agent_logs_recent;
