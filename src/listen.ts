import type { Server } from 'node:http';

/** Starts `server` listening; resolves once it listens, rejects when it cannot (a port in use, say). */
export function listen(server: Server, port: number, host?: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
