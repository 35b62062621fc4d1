-- A status notification may store the task row as it was at the change (without its create request,
-- which never changes) instead of the rendered body: the change, its event and its notification are then
-- written by one statement, and the worker renders the body when it sends it.
ALTER TABLE "webhook_deliveries" ALTER COLUMN "payload" DROP NOT NULL;
ALTER TABLE "webhook_deliveries" ADD COLUMN "task_state" JSONB;
