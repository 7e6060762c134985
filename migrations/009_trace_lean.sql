-- 009_trace_lean.sql: the trace tables (008) without their folded_at indexes. The fold writes a row per event in
-- its transaction and every secondary index is a write of its own (bench: the trace rows cost a state batch about
-- a quarter of its time with them); retention deletes walk the primary key instead (ids grow with folded_at),
-- a bounded number of rows per statement (db/trace.py).
ALTER TABLE fold_outcomes DROP INDEX idx_fold_outcomes_folded_at;
ALTER TABLE fold_transitions DROP INDEX idx_fold_transitions_folded_at;
