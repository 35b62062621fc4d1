export const USAGE = `Usage:
  npm run cli -- keys create --tenant <name>   create an API key (prints it once, as JSON)
  npm run cli -- keys list [--tenant <name>]   list API keys (ids and prefixes, never the keys)
  npm run cli -- keys revoke <key_id>          revoke an API key
  npm run cli -- keys rotate-secret --tenant <name>
                                               new webhook signing secret for the tenant (prints it once)
  npm run cli -- tasks show <task_id>          a task (any tenant) with its timeline
  npm run cli -- tasks list [--status <status>] [--tenant <name>] [--limit <1-100>] [--after <task_id>]
                                               tasks, newest first; next_cursor is the --after of the next page
  npm run cli -- tasks retry <task_id>         send a failed task to Kling again (failed -> queued, a new round)

Every command prints JSON on stdout. Exit codes: 0 done, 1 refused (named on stderr), 2 bad usage.`;

/** Wrong command line: exit 2 with the usage. */
export class UsageError extends Error {}
