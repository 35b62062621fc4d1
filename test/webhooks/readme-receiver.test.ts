import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startTestService, type TestService } from '../helpers/test-service';
import { validImageTask } from '../helpers/factories';
import { freePort } from '../helpers/fault-utils';

/** The README's receiver snippet, run as written (only its port changed), receiving real deliveries. */

const ROOT = path.resolve(__dirname, '../..');

function readmeReceiverSnippet(): string {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const match = /A receiver verifies a delivery[\s\S]*?```js\n([\s\S]*?)```/.exec(readme);
  if (!match?.[1]) throw new Error('README has no receiver snippet after "A receiver verifies a delivery"');
  return match[1];
}

describe("the README's webhook receiver", () => {
  let service: TestService;
  let receiver: ChildProcess | undefined;
  const script = path.join(ROOT, `.readme-receiver-${process.pid}.js`);

  beforeAll(async () => {
    service = await startTestService();
  });
  afterAll(async () => {
    receiver?.kill('SIGKILL');
    rmSync(script, { force: true });
    await service.stop();
  });

  test('when the service notifies it, then the snippet verifies every delivery and logs the task reaching succeed', async () => {
    const tenant = await service.createTenant();
    const secret = (await service.runtime.db.tenant.findUniqueOrThrow({ where: { name: tenant.tenant } })).webhookSecret;
    // A port the OS just found free (one derived from the pid fell in the ephemeral range and was once taken).
    const port = await freePort();
    writeFileSync(script, readmeReceiverSnippet().replace('.listen(4000', `.listen(${port}`));
    let output = '';
    receiver = spawn(process.execPath, [script], { env: { ...process.env, WEBHOOK_SECRET: secret }, cwd: ROOT });
    receiver.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    receiver.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 10_000;
    while (!output.includes('listening')) {
      if (Date.now() > deadline) throw new Error(`receiver did not start: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }

    const created = await service.http
      .post('/v1/tasks')
      .set('authorization', tenant.auth)
      .send(validImageTask({ callback_url: `http://127.0.0.1:${port}/hook` }));
    const taskId = created.body.task_id as string;
    while (!output.includes(`${taskId} succeed`)) {
      if (Date.now() > deadline + 10_000) throw new Error(`no succeed notification logged: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }

    expect(output).toMatch(new RegExp(`msg_\\w+ ${taskId} submitted`));
    // The receiver logs before it answers: wait for the service to record the last answer.
    const recorded = () => service.runtime.db.webhookDelivery.findMany({ where: { taskId }, orderBy: { id: 'asc' } });
    while ((await recorded()).some((d) => d.state === 'pending')) {
      if (Date.now() > deadline + 20_000) throw new Error('deliveries still pending');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const deliveries = await recorded();
    expect(deliveries.map((d) => d.state)).toEqual(['delivered', 'delivered', 'delivered']);
    expect(deliveries.map((d) => d.lastStatus)).toEqual([204, 204, 204]);
  });
});
