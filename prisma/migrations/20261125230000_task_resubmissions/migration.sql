-- An operator may send a failed task to Kling again (`npm run cli -- tasks retry <id>`). Each such round
-- is a new Kling task with its own external_task_id, so a late callback or a look-up from an earlier
-- round can be told apart from the current one.
ALTER TABLE "tasks" ADD COLUMN "resubmissions" INTEGER NOT NULL DEFAULT 0;
