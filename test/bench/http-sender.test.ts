import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { chunkedBodyEnd, createHttpSender, parseHead, requestBytes } from '../../bench/http-sender';

/**
 * The bench's load generator sends its requests through its own small HTTP/1.1 client. These tests run
 * it against a real node:http server on loopback: what the server receives, what the generator reads of
 * the answers, and how it behaves when the server closes connections.
 */
describe('the load generator HTTP client', () => {
  let server: Server;
  let port: number;
  let handler: (req: IncomingMessage, body: string, res: ServerResponse) => void;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => handler(req, Buffer.concat(chunks).toString(), res));
    });
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const shape = (body = '{"a":1}') => ({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/v1/tasks',
    headers: { 'content-type': 'application/json', authorization: 'Bearer k' },
    body: Buffer.from(body),
  });

  test('when requests are sent, then the server gets the method, path, headers and body, and the status and Location come back', async () => {
    const seen: Array<{ method?: string; url?: string; auth?: string; body: string }> = [];
    handler = (req, body, res) => {
      seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, body });
      res.writeHead(202, { location: `/v1/tasks/${seen.length}`, 'content-type': 'application/json' }).end('{"ok":true}');
    };
    const sender = createHttpSender(shape(), 2);
    try {
      const answers = await Promise.all([sender.send(), sender.send(), sender.send()]);
      expect(answers.map((a) => a.status)).toEqual([202, 202, 202]);
      expect(answers.map((a) => a.location).sort()).toEqual(['/v1/tasks/1', '/v1/tasks/2', '/v1/tasks/3']);
      expect(seen).toHaveLength(3);
      for (const request of seen) expect(request).toEqual({ method: 'POST', url: '/v1/tasks', auth: 'Bearer k', body: '{"a":1}' });
    } finally {
      sender.close();
    }
  });

  test('when more requests are out than sockets allowed, then they wait for a free socket and the server sees no more connections', async () => {
    const peers = new Set<string>();
    handler = (req, _body, res) => {
      peers.add(`${req.socket.remotePort}`);
      setTimeout(() => res.writeHead(200).end('x'), 5);
    };
    const sender = createHttpSender(shape(), 3);
    try {
      const answers = await Promise.all(Array.from({ length: 12 }, () => sender.send()));
      expect(answers.every((a) => a.status === 200)).toBe(true);
      expect(peers.size).toBe(3);
    } finally {
      sender.close();
    }
  });

  test('when the answer is chunked or an error status, then it is read to its end and the socket is used again', async () => {
    let count = 0;
    handler = (_req, _body, res) => {
      count++;
      if (count === 1) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first part;');
        setTimeout(() => res.end('second part'), 5); // no Content-Length: node:http sends it chunked
      } else {
        res.writeHead(422, { 'content-type': 'application/json' }).end('{"error":"bad"}');
      }
    };
    const sender = createHttpSender(shape(), 1);
    try {
      expect(await sender.send()).toEqual({ status: 200, location: undefined });
      expect(await sender.send()).toEqual({ status: 422, location: undefined });
      expect(count).toBe(2);
    } finally {
      sender.close();
    }
  });

  test('when the server closes an idle kept-alive socket, then the next request goes out on a new one instead of failing', async () => {
    handler = (_req, _body, res) => res.writeHead(200).end('ok');
    const sender = createHttpSender(shape(), 1);
    try {
      expect((await sender.send()).status).toBe(200);
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect((await sender.send()).status).toBe(200);
    } finally {
      sender.close();
    }
  });

  test('when a kept-alive socket is reset as a request goes out on it, then the request is sent once more on a new socket, and only once', async () => {
    let requests = 0;
    let resetsLeft = 1;
    handler = (req, _body, res) => {
      requests++;
      // The second request comes on the socket kept from the first: drop it without a byte of answer.
      if (requests >= 2 && resetsLeft-- > 0) return req.socket.destroy();
      res.writeHead(200).end('ok');
    };
    const sender = createHttpSender(shape(), 1);
    try {
      expect((await sender.send()).status).toBe(200);
      expect((await sender.send()).status).toBe(200);
      expect(requests).toBe(3);

      resetsLeft = 2; // the first request on a kept socket is dropped, and so is its one retry
      await expect(sender.send()).rejects.toThrow(/socket closed|ECONNRESET/);
    } finally {
      sender.close();
    }
  });

  test('when the server answers with Connection: close, then the answer counts and the next request opens a new socket', async () => {
    const peers: string[] = [];
    handler = (req, _body, res) => {
      peers.push(`${req.socket.remotePort}`);
      res.writeHead(200, { connection: 'close' }).end('bye');
    };
    const sender = createHttpSender(shape(), 1);
    try {
      expect((await sender.send()).status).toBe(200);
      expect((await sender.send()).status).toBe(200);
      expect(new Set(peers).size).toBe(2);
    } finally {
      sender.close();
    }
  });

  test('when nothing listens, then the request fails with the socket error', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const sender = createHttpSender({ ...shape(), port: closedPort }, 1);
    try {
      await expect(sender.send()).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      sender.close();
    }
  });
});

describe('reading an answer', () => {
  test('when the head is incomplete, then there is nothing yet; when complete, then status, Location and length are read whatever the case of the names', () => {
    expect(parseHead(Buffer.from('HTTP/1.1 202 Accepted\r\nLocation: /x'))).toBeUndefined();
    const head = 'HTTP/1.1 202 Accepted\r\nLOCATION: /v1/tasks/tsk_1\r\nContent-Length: 15\r\nConnection: keep-alive\r\n\r\n';
    expect(parseHead(Buffer.from(`${head}{"status":"ok"}`))).toEqual({
      status: 202,
      location: '/v1/tasks/tsk_1',
      contentLength: 15,
      close: false,
      headLength: head.length,
    });
  });

  test('when a chunked body is complete (with or without trailers), then its end is found; while incomplete, then it is not', () => {
    const body = '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n';
    expect(chunkedBodyEnd(Buffer.from(body))).toBe(body.length);
    expect(chunkedBodyEnd(Buffer.from(body.slice(0, -2)))).toBe(-1);
    expect(chunkedBodyEnd(Buffer.from('5\r\nhel'))).toBe(-1);
    const withTrailer = '3\r\nabc\r\n0\r\nX-Checksum: 1\r\n\r\n';
    expect(chunkedBodyEnd(Buffer.from(withTrailer))).toBe(withTrailer.length);
  });

  test('when the request is built, then its Content-Length is the body length in bytes and the caller cannot override it', () => {
    const bytes = requestBytes({ host: 'h', port: 1, method: 'POST', path: '/p', headers: { 'Content-Length': '1' }, body: Buffer.from('é') });
    const text = bytes.toString('latin1');
    expect(text).toMatch(/^POST \/p HTTP\/1\.1\r\n/);
    expect(text).toContain('content-length: 2\r\n');
    expect(text).not.toContain('Content-Length: 1');
  });
});
