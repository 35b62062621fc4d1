import { runCli, type CliResult } from '../helpers/cli';
import { uniqueExternalId, validImageTask } from '../helpers/factories';
import { startTestService, type TestService } from '../helpers/test-service';

/**
 * `tasks show|list|retry` against a running service: the CLI is its own process on the service's
 * database and queue prefix, and the service's in-process workers run what a retry queues.
 */
describe('CLI: tasks', () => {
  let service: TestService;
  let auth: string;
  let tenant: string;

  const cli = (...args: string[]): Promise<CliResult> =>
    runCli({ DATABASE_URL: service.db.url, REDIS_URL: service.runtime.config.redisUrl, QUEUE_PREFIX: service.runtime.config.queuePrefix }, ...args);
  const json = (result: CliResult) => {
    if (result.code !== 0) throw new Error(`CLI exited ${result.code}: ${result.stderr}`);
    return JSON.parse(result.stdout);
  };
  const submit = async (overrides: Record<string, unknown> = {}, as = auth): Promise<string> => {
    const created = await service.http.post('/v1/tasks').set('authorization', as).send(validImageTask({ external_task_id: uniqueExternalId(), ...overrides }));
    expect(created.status).toBe(202);
    return created.body.task_id;
  };
  /** A task Kling accepted and then reported failed. */
  const failedUpstream = async (): Promise<string> => {
    service.fake!.options.outcome = 'failed';
    try {
      const taskId = await submit();
      await service.waitForTask(taskId, (task) => task.status === 'failed');
      return taskId;
    } finally {
      service.fake!.options.outcome = 'succeed';
    }
  };

  beforeAll(async () => {
    service = await startTestService();
    ({ auth, tenant } = await service.createTenant());
  });
  afterAll(() => service.stop());
  afterEach(() => {
    service.fake!.options.callbacks = 'normal';
  });

  test('when a task is shown, then the CLI prints it as the API does, with its tenant and its timeline', async () => {
    const taskId = await submit();
    await service.waitForTask(taskId, (task) => task.status === 'succeed');

    const shown = json(await cli('tasks', 'show', taskId));

    const api = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', auth);
    const { events, tenant: shownTenant, ...task } = shown;
    expect(task).toEqual(api.body);
    expect(shownTenant).toBe(tenant);
    expect(events.map((event: { type: string }) => event.type)).toEqual(expect.arrayContaining(['created', 'submitted', 'callback']));
    expect(events.at(-1)).toMatchObject({ status: 'succeed' });
  });

  test('when an unknown task is shown, then the CLI exits 1 naming it', async () => {
    const result = await cli('tasks', 'show', 'tsk_01KB0000000000000000000000');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('tsk_01KB0000000000000000000000');
    expect(result.stdout).toBe('');
  });

  test('when tasks are listed by status and tenant, then only those show, newest first, a page at a time', async () => {
    const other = await service.createTenant();
    const failedIds = [await failedUpstream(), await failedUpstream()];
    const othersTask = await submit({}, other.auth);
    await service.waitForTask(othersTask, (task) => task.status === 'succeed');

    const failed = json(await cli('tasks', 'list', '--status', 'failed', '--tenant', tenant));
    expect(failed.data.map((task: { task_id: string }) => task.task_id)).toEqual(expect.arrayContaining(failedIds));
    expect(failed.data.every((task: { status: string; tenant: string }) => task.status === 'failed' && task.tenant === tenant)).toBe(true);

    const firstPage = json(await cli('tasks', 'list', '--tenant', tenant, '--status', 'failed', '--limit', '1'));
    expect(firstPage.data).toHaveLength(1);
    expect(firstPage.data[0].task_id).toBe(failed.data[0].task_id);
    const secondPage = json(await cli('tasks', 'list', '--tenant', tenant, '--status', 'failed', '--limit', '1', '--after', firstPage.next_cursor));
    expect(secondPage.data[0].task_id).toBe(failed.data[1].task_id);

    const everyone = json(await cli('tasks', 'list', '--limit', '100'));
    expect(everyone.data.map((task: { tenant: string }) => task.tenant)).toEqual(expect.arrayContaining([tenant, other.tenant]));
  });

  test.each([
    ['an unknown status', ['tasks', 'list', '--status', 'done'], '--status must be one of'],
    ['a limit past 100', ['tasks', 'list', '--limit', '500'], '--limit must be at most 100'],
    ['a cursor that is no task id', ['tasks', 'list', '--after', 'page-2'], '--after must be a task id'],
    ['show without an id', ['tasks', 'show'], 'tasks show needs a task id'],
    ['retry without an id', ['tasks', 'retry'], 'tasks retry needs a task id'],
    ['an unknown tasks command', ['tasks', 'purge'], 'Unknown tasks command "purge"'],
  ])('when the CLI gets %s, then it exits 2 saying why, with the usage', async (_label, args, message) => {
    const result = await cli(...args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
    expect(result.stderr).toContain('Usage:');
    expect(result.stdout).toBe('');
  });

  test('when a listed tenant does not exist, then the CLI exits 1 naming it', async () => {
    const result = await cli('tasks', 'list', '--tenant', 'nobody-at-all');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('nobody-at-all');
  });

  test('when a failed task is retried, then it is queued again and Kling gets a new create under a new external_task_id, and it succeeds', async () => {
    const taskId = await failedUpstream();
    const before = await service.runtime.tasks.findById(taskId);

    const retried = json(await cli('tasks', 'retry', taskId));

    expect(retried).toMatchObject({ task_id: taskId, tenant, status: 'queued', attempts: 0, error: null, upstream_task_id: null, completed_at: null });
    const done = await service.waitForTask(taskId, (task) => task.status === 'succeed');
    expect(done).toMatchObject({ attempts: 1, resubmissions: 1, error: null });
    expect(done.upstreamTaskId).not.toBe(before!.upstreamTaskId);
    const creates = service.fake!.creates().filter((request) => String(request.body.external_task_id).startsWith(taskId));
    expect(creates.map((request) => request.body.external_task_id)).toEqual([taskId, `${taskId}_r1`]);
    expect(creates[1]!.body.callback_url).toMatch(/&round=1$/);
    const events = json(await cli('tasks', 'show', taskId)).events;
    const retriedEvent = events.find((event: { type: string }) => event.type === 'retried');
    expect(retriedEvent).toMatchObject({
      status: 'queued',
      detail: { by: 'operator (cli)', round: 1, previous: { upstream_task_id: before!.upstreamTaskId, error: { code: 'UPSTREAM_TASK_FAILED' } } },
    });
  });

  test('when a retried task still hears from its first round, then that late callback changes nothing', async () => {
    const taskId = await failedUpstream();
    const firstRound = service.fake!.taskByExternalId(taskId)!;
    // The second round stays `submitted`: Kling says nothing more about it during the test.
    service.fake!.options.callbacks = 'none';
    json(await cli('tasks', 'retry', taskId));
    await service.waitForTask(taskId, (task) => task.status === 'submitted');

    const status = await service.fake!.sendCallback(firstRound, { task_status: 'failed', task_status_msg: 'late news from round 0' });

    expect(status).toBe(200);
    const task = await service.runtime.tasks.findById(taskId);
    expect(task).toMatchObject({ status: 'submitted', error: null });
    const events = await service.runtime.tasks.listEvents(taskId);
    expect(events.at(-1)).toMatchObject({ type: 'callback', detail: { applied: false, reason: 'callback from round 0; the task is in round 1' } });
  });

  test('when a task that has not failed is retried, then the CLI exits 1 saying why and the task is unchanged', async () => {
    const taskId = await submit();
    const done = await service.waitForTask(taskId, (task) => task.status === 'succeed');

    const result = await cli('tasks', 'retry', taskId);

    expect(result.code).toBe(1);
    expect(result.stderr).toContain('only a failed task can be');
    expect(result.stderr).toContain('"succeed"');
    expect(await service.runtime.tasks.findById(taskId)).toEqual(done);
    expect(service.fake!.creates().filter((request) => String(request.body.external_task_id).startsWith(taskId))).toHaveLength(1);
  });

  test('when an unknown task is retried, then the CLI exits 1 naming it', async () => {
    const result = await cli('tasks', 'retry', 'tsk_01KB0000000000000000000001');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('tsk_01KB0000000000000000000001');
  });
});
