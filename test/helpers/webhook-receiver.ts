import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  body: any;
  raw: string;
  /** The Standard Webhooks signature checked out with the tenant's secret. */
  verified: boolean;
  answered: number;
}

/**
 * A client's webhook receiver over real HTTP: verifies each delivery with the Standard Webhooks library,
 * and answers with the statuses scripted by `failFirst` (then 204).
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  private readonly server: Server;
  url = '';
  /** Requests being answered right now, and the most there were at once. */
  private inFlight = 0;
  maxInFlight = 0;

  /** `answerDelayMs`: each answer is held this long (a slow receiver). */
  constructor(
    private readonly secret: string | undefined,
    private failFirst = 0,
    private readonly answerDelayMs = 0,
  ) {
    this.server = createServer((req, res) => {
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      let raw = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (raw += chunk));
      req.on('end', () => {
        let verified = false;
        if (this.secret) {
          try {
            new Webhook(this.secret).verify(raw, req.headers as Record<string, string>);
            verified = true;
          } catch {
            verified = false;
          }
        }
        const answered = this.failFirst > 0 ? 500 : 204;
        if (this.failFirst > 0) this.failFirst--;
        this.received.push({ headers: req.headers, body: JSON.parse(raw), raw, verified, answered });
        setTimeout(() => {
          this.inFlight--;
          res.writeHead(answered).end();
        }, this.answerDelayMs);
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/kling`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The deliveries that were answered 2xx, in arrival order. */
  accepted(): ReceivedWebhook[] {
    return this.received.filter((r) => r.answered < 300);
  }
}
