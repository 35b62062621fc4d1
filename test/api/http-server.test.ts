import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import express from 'express';
import { createHttpServer } from '../../src/api/http-server';

/**
 * The API's HTTP server (src/api/http-server.ts) on loopback: requests and responses are made with the
 * Express app's prototypes before Express sees them, and the app behaves as under Node's own server.
 */
describe('HTTP server for the Express app', () => {
  let server: Server;
  let baseUrl: string;
  const prototypesAtArrival: { req: unknown; res: unknown }[] = [];
  const app = express();
  app.use(express.json());
  app.post('/echo/:name', (req, res) => {
    res.status(201).set('x-name', req.params.name).json({ name: req.params.name, body: req.body, contentType: req.get('content-type'), app: req.app === app });
  });

  beforeAll(async () => {
    server = createHttpServer(app);
    // Before Express's own handler runs: what Node made.
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => prototypesAtArrival.push({ req: Object.getPrototypeOf(req), res: Object.getPrototypeOf(res) }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test('when a request arrives, then it and its response already have the app\'s prototypes, and Express routes, parses and answers it as usual', async () => {
    const answer = await fetch(`${baseUrl}/echo/ada?x=1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n: 1 }) });

    expect(answer.status).toBe(201);
    expect(answer.headers.get('x-name')).toBe('ada');
    expect(await answer.json()).toEqual({ name: 'ada', body: { n: 1 }, contentType: 'application/json', app: true });
    expect(prototypesAtArrival).toHaveLength(1);
    expect(prototypesAtArrival[0]!.req).toBe(app.request);
    expect(prototypesAtArrival[0]!.res).toBe(app.response);
  });
});
