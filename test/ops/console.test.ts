import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { uniqueExternalId, validImageTask } from '../helpers/factories';
import { startTestService, type TestService } from '../helpers/test-service';
import { WebhookReceiver } from '../helpers/webhook-receiver';

/** Debian's Chromium (`apt-get install chromium`; .ci/run installs it when missing). */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Screenshots are kept for people to look at (git-ignored). */
const ARTIFACTS = path.join(__dirname, '..', 'artifacts');

/**
 * The task console in a real headless Chromium, against the whole service (fake Kling calling back over
 * HTTP): what an operator sees and can do, driven through the page only.
 */
describe('task console (/console) in headless Chromium', () => {
  let service: TestService;
  let browser: Browser;
  let page: Page;
  let apiKey: string;
  let auth: string;

  const submit = async (overrides: Record<string, unknown> = {}) => {
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask({ external_task_id: uniqueExternalId('console'), ...overrides }));
    expect(created.status).toBe(202);
    return created.body.task_id as string;
  };
  const signIn = async (key: string) => {
    await page.goto(`${service.baseUrl}/console`);
    await page.fill('#api-key', key);
    await page.click('#key-form button[type=submit]');
  };
  const statusOnPage = () => page.locator('[data-testid=task-status]');

  beforeAll(async () => {
    // Callbacks a little apart, so the page shows the task moving.
    service = await startTestService({ fakeKling: { callbackDelayMs: 300 } });
    ({ apiKey, auth } = await service.createTenant());
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // As the machine's own probe runs it: no sandbox as root, and no background calls to a closed network.
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  beforeEach(async () => {
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });
  afterEach(() => page.close());
  afterAll(async () => {
    await browser?.close();
    await service.stop();
  });

  test('when a task is submitted through the API, then the console lists it, opens it and shows it reach succeed with its timeline', async () => {
    await signIn(apiKey);
    await page.locator('#workspace').waitFor({ state: 'visible' });

    const taskId = await submit({ element_name: 'Console hero' });

    const row = page.locator(`#task-rows tr[data-task-id="${taskId}"]`);
    await row.waitFor({ timeout: 10_000 });
    await row.click();
    await page.locator('[data-testid=task-status][data-status=succeed]').waitFor({ timeout: 15_000 });
    expect(await statusOnPage().textContent()).toBe('succeed');
    expect(await page.locator('#detail-id').textContent()).toBe(taskId);
    const timeline = await page.locator('#event-rows tr td:nth-child(2)').allTextContents();
    expect(timeline).toEqual(expect.arrayContaining(['created', 'submitted', 'callback']));
    expect(await page.locator('#detail-result').textContent()).toContain('987654321987654321');
    expect(await page.locator('#cancel-task').isDisabled()).toBe(true);
    mkdirSync(ARTIFACTS, { recursive: true });
    const screenshot = path.join(ARTIFACTS, 'console-task-succeed.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(readFileSync(screenshot).subarray(1, 4).toString()).toBe('PNG');
  });

  test('when the list is filtered by status, then only tasks in that status show', async () => {
    const finished = await submit();
    await service.waitForTask(finished, (task) => task.status === 'succeed');
    await service.runtime.queues.submit.pause();
    try {
      const waiting = await submit();
      await signIn(apiKey);
      await page.selectOption('#filter-status', 'queued');
      await page.click('#filters button[type=submit]');

      await page.locator(`#task-rows tr[data-task-id="${waiting}"]`).waitFor();
      const statuses = await page.locator('#task-rows .status').allTextContents();
      expect(new Set(statuses)).toEqual(new Set(['queued']));
      expect(await page.locator(`#task-rows tr[data-task-id="${finished}"]`).count()).toBe(0);
    } finally {
      await service.runtime.queues.submit.resume();
    }
  });

  test('when an operator cancels a queued task on the page, then it is canceled and never reaches Kling', async () => {
    await service.runtime.queues.submit.pause();
    try {
      const taskId = await submit();
      await signIn(apiKey);
      await page.locator(`#task-rows tr[data-task-id="${taskId}"]`).click();
      await page.locator('[data-testid=task-status][data-status=queued]').waitFor();

      await page.click('#cancel-task');

      await page.locator('[data-testid=task-status][data-status=canceled]').waitFor();
      expect(await page.locator('#message').textContent()).toBe(`Task ${taskId} canceled.`);
      expect((await service.runtime.tasks.findById(taskId))?.status).toBe('canceled');
      await service.runtime.queues.submit.resume();
      // The job, once run, finds the task canceled and sends nothing.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(service.fake!.creates().filter((request) => request.body.external_task_id === taskId)).toHaveLength(0);
    } finally {
      await service.runtime.queues.submit.resume();
    }
  });

  test('when an operator redelivers a finished task\'s notification on the page, then the client gets it again', async () => {
    const receiver = await new WebhookReceiver(undefined).start();
    try {
      const taskId = await submit({ callback_url: receiver.url });
      await service.waitForTask(taskId, (task) => task.status === 'succeed');
      const delivered = (n: number) => async () => {
        while (receiver.received.filter((hook) => hook.body.status === 'succeed').length < n) await new Promise((resolve) => setTimeout(resolve, 25));
      };
      await delivered(1)();
      await signIn(apiKey);
      await page.goto(`${service.baseUrl}/console#task=${taskId}`);
      await page.locator('[data-testid=task-status][data-status=succeed]').waitFor();

      await page.click('#redeliver-task');

      await page.locator('#message', { hasText: 'Notification queued again' }).waitFor();
      await delivered(2)();
      const succeedHooks = receiver.received.filter((hook) => hook.body.status === 'succeed');
      expect(succeedHooks[1]!.body.task_id).toBe(taskId);
      expect(succeedHooks[1]!.headers['webhook-id']).not.toBe(succeedHooks[0]!.headers['webhook-id']);
    } finally {
      await receiver.stop();
    }
  });

  test('when a wrong API key is used, then the page says why and shows no tasks', async () => {
    await signIn('ket_not-a-real-key-0000000000000000000');

    await page.locator('#message.error').waitFor();
    expect(await page.locator('#message').textContent()).toMatch(/API key/i);
    expect(await page.locator('#workspace').isHidden()).toBe(true);
  });

  test('when the console is served, then its page, script and style come from this server under a strict content security policy', async () => {
    const html = await service.http.get('/console');
    expect(html.status).toBe(200);
    expect(html.headers['content-type']).toMatch(/text\/html/);
    expect(html.headers['content-security-policy']).toContain("script-src 'self'");
    expect(html.headers['content-security-policy']).toContain("connect-src 'self'");
    for (const asset of ['/console/console.js', '/console/console.css']) {
      expect(html.text).toContain(asset);
      expect((await service.http.get(asset)).status).toBe(200);
    }
  });
});
