import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Express } from 'express';

/** Node's request and response constructors are plain functions (not classes) that can run on another object. */
const isPlainFunction = (constructor: unknown): boolean => typeof constructor === 'function' && !/^class\b/.test(Function.prototype.toString.call(constructor));

/**
 * The HTTP server for an Express app, whose requests and responses are born with the app's prototypes.
 *
 * Express gives every request and response new prototypes on arrival (`Object.setPrototypeOf(req,
 * app.request)` in `app.handle`), and that costs V8 more than it looks: each request allocates more, and
 * about a quarter of it outlives two young-generation collections, so it is copied into the old
 * generation and freed only by the next full collection. Measured with a bare Express app at 1,800
 * requests/s (`--trace-gc-nvp`): 2.9 MB promoted per young collection, each pausing 3.5 ms, against
 * nothing promoted and 0.4 ms pauses when the objects are made with Express's prototypes from the start,
 * as here (Express's own `setPrototypeOf` then changes nothing). In the API those pauses, and the full
 * collections every ~2 s that they brought, lengthened the tail of every request (bench/README.md,
 * eighth session).
 *
 * Should Node's constructors ever become classes (which cannot be called on another object), the server
 * falls back to Node's own, which only costs the above.
 */
export function createHttpServer(app: Express): Server {
  if (!isPlainFunction(http.IncomingMessage) || !isPlainFunction(http.ServerResponse)) return http.createServer(app);
  const incomingMessage = http.IncomingMessage as unknown as (this: IncomingMessage, socket: Socket) => void;
  const serverResponse = http.ServerResponse as unknown as (this: ServerResponse, req: IncomingMessage, options?: object) => void;
  function ExpressRequest(this: IncomingMessage, socket: Socket): void {
    incomingMessage.call(this, socket);
  }
  ExpressRequest.prototype = app.request;
  function ExpressResponse(this: ServerResponse, req: IncomingMessage, options?: object): void {
    serverResponse.call(this, req, options);
  }
  ExpressResponse.prototype = app.response;
  return http.createServer(
    {
      IncomingMessage: ExpressRequest as unknown as typeof http.IncomingMessage,
      ServerResponse: ExpressResponse as unknown as typeof http.ServerResponse,
    },
    app,
  );
}
