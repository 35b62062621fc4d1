import { parseConfig } from '../config';
import { migrate } from './migrate';

/** `npm run migrate`: apply pending migrations to DATABASE_URL and exit. */
async function main(): Promise<void> {
  const config = parseConfig();
  const applied = await migrate(config.databaseUrl);
  const target = new URL(config.databaseUrl).pathname.slice(1);
  console.log(applied.length ? `Applied ${applied.join(', ')} to ${target}` : `${target} is up to date`);
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exit(1);
});
