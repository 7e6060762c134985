-- 004_scope.sql: the router splits an event that touches a task and an agent into two fold.tasks records,
-- one ordered with the task and one with the agent, each applying only the effects of its scope (see
-- streams/route.py). A parked half must wake as the same half: parked_events keeps its scope.
ALTER TABLE parked_events
  ADD COLUMN scope VARCHAR(16) NULL AFTER entity;
