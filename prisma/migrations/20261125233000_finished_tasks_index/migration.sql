-- Finished tasks by completion time, for the retention purge (RETENTION_DAYS): it finds the oldest
-- expired rows without scanning the table. Partial, so the hot path (unfinished tasks) never maintains it.
CREATE INDEX "tasks_finished_completed_at_idx" ON "tasks" ("completed_at") WHERE "status" IN ('succeed', 'failed', 'canceled');
