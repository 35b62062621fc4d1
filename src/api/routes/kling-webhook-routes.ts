import express, { type RequestHandler, type Router } from 'express';
import { Webhook } from 'standardwebhooks';
import { z } from 'zod';
import type { TaskRecord, TaskRepository } from '../../db/task-repository';
import { AppError } from '../../errors';
import type { Logger } from '../../logger';
import type { CallbackOutcome, Metrics } from '../../metrics/metrics';
import { applyCallbackWithoutReading, applyUpstreamUpdate, type ApplyUpdateDeps, type UpdateOutcome } from '../../tasks/apply-upstream-update';
import { otherRoundReason } from '../../tasks/submission-round';
import { klingTaskSchema, parseJsonKeepingBigIds, type KlingTask } from '../../upstream/kling-wire';
import type { CallbackTokens } from '../../webhooks/callback-token';
import { parseOrThrow } from '../validation';

export interface KlingWebhookDeps extends ApplyUpdateDeps {
  tasks: TaskRepository;
  callbackTokens: CallbackTokens;
  logger: Logger;
  /** When set, Kling's Standard Webhooks signature is checked as well as the URL token. */
  klingWebhookSecret?: string;
  metrics?: Pick<Metrics, 'callbackReceived'>;
}

/** The submission round a callback URL names (see tasks/submission-round.ts); absent means round 0. */
const callbackRoundSchema = z.coerce.number({ error: 'must be a number' }).int('must be an integer').min(0, 'must not be negative').default(0);

/** The callback's body and the round its URL names, or the 400 to answer (once the task is known to exist). */
function parseCallback(rawBody: string, roundParam: unknown): { snapshot: KlingTask; round: number } | AppError {
  let body: unknown;
  try {
    body = parseJsonKeepingBigIds(rawBody);
  } catch (error) {
    return new AppError('INVALID_JSON', `Callback body is not valid JSON: ${(error as Error).message}`);
  }
  try {
    return { snapshot: parseOrThrow(klingTaskSchema, body, 'callback'), round: parseOrThrow(callbackRoundSchema, roundParam, 'round') };
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
}

/** Counts every callback once its answer is sent: the handler names the outcome, errors count as rejected. */
function countCallbacks(metrics: KlingWebhookDeps['metrics']): RequestHandler {
  return (_req, res, next) => {
    res.on('finish', () => {
      const outcome = (res.locals.callbackOutcome as CallbackOutcome | undefined) ?? (res.statusCode >= 500 ? 'error' : 'rejected');
      metrics?.callbackReceived(outcome);
    });
    next();
  };
}

/**
 * Kling's callbacks: POST /webhooks/kling/:task_id?token=… with the bare task object. Duplicate, stale
 * and out-of-order callbacks are answered 200 and change nothing, so Kling has no reason to retry them.
 */
export function klingWebhookRoutes(deps: KlingWebhookDeps): Router {
  const router = express.Router();
  const signature = deps.klingWebhookSecret ? new Webhook(deps.klingWebhookSecret) : undefined;

  router.use(countCallbacks(deps.metrics));
  // Raw body: the signature covers the exact bytes, and big element ids must not pass through JSON.parse.
  router.post('/:task_id', express.text({ type: () => true, limit: '1mb' }), async (req, res) => {
    const taskId = req.params.task_id;
    if (!deps.callbackTokens.verify(taskId, req.query.token)) {
      throw new AppError('INVALID_CALLBACK_TOKEN', 'The callback token is missing or does not match this task');
    }
    const rawBody = typeof req.body === 'string' ? req.body : '';
    if (signature) {
      try {
        // jsonParse off: a correctly signed body that is not JSON is a 400 below, not a bad signature.
        signature.verify(
          rawBody,
          {
            'webhook-id': req.get('webhook-id') ?? '',
            'webhook-timestamp': req.get('webhook-timestamp') ?? '',
            'webhook-signature': req.get('webhook-signature') ?? '',
          },
          { jsonParse: false },
        );
      } catch {
        throw new AppError('INVALID_CALLBACK_TOKEN', 'The Standard Webhooks signature of the callback is missing or invalid');
      }
    }
    const parsed = parseCallback(rawBody, req.query.round);
    const answer = (outcome: UpdateOutcome['outcome'], after: TaskRecord, upstreamStatus: string): void => {
      res.locals.callbackOutcome = (outcome !== 'ignored' ? 'accepted' : after.status === upstreamStatus ? 'duplicate' : 'stale') satisfies CallbackOutcome;
      (req.log ?? deps.logger).info({ taskId, upstreamStatus, outcome, status: after.status }, 'Kling callback');
      res.json({ received: true, applied: outcome === 'applied', status: after.status });
    };
    // The usual callback (this round, the next status) in one statement; anything else takes the full
    // path below, which reads the task first and says why it was not applied.
    if (!(parsed instanceof AppError)) {
      const applied = await applyCallbackWithoutReading(deps, taskId, parsed.round, parsed.snapshot);
      if (applied) {
        answer('applied', applied, parsed.snapshot.task_status);
        return;
      }
    }
    const task = await deps.tasks.findById(taskId);
    if (!task) throw new AppError('TASK_NOT_FOUND', `No task ${JSON.stringify(taskId)}`);
    if (parsed instanceof AppError) throw parsed;
    const { snapshot, round } = parsed;
    const otherRound = otherRoundReason(task, snapshot, round);
    if (otherRound) {
      await deps.tasks.addEvent(taskId, { type: 'callback', status: task.status, detail: { applied: false, reason: otherRound, upstream_task_id: snapshot.task_id } });
      res.locals.callbackOutcome = 'rejected' satisfies CallbackOutcome;
      res.json({ received: true, applied: false });
      return;
    }
    const { outcome, task: after } = await applyUpstreamUpdate(deps, task, snapshot, 'callback');
    answer(outcome, after, snapshot.task_status);
  });

  return router;
}
