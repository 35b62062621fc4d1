import type { Express } from 'express';

export interface RegisteredRoute {
  /** Lower-case HTTP method, or `mount` for a mounted sub-application (its own routes are its business). */
  method: string;
  /** As Express registered it: `/v1/tasks/:task_id`. */
  path: string;
}

interface Layer {
  rawPath?: string | string[];
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle: { stack?: Layer[]; name?: string; set?: unknown };
}

const join = (prefix: string, path: string): string => (path === '/' ? prefix || '/' : `${prefix}${path}`.replace(/\/{2,}/g, '/'));

const pathsOf = (path: string | string[] | undefined): string[] => (path === undefined ? ['/'] : Array.isArray(path) ? path : [path]);

/**
 * Every route an Express 5 app answers, found by walking its router stack (router 2.x keeps each
 * layer's `rawPath`). Middleware without routes (parsers, auth, static files) is not a route.
 */
export function registeredRoutes(app: Express): RegisteredRoute[] {
  const routes: RegisteredRoute[] = [];
  const walk = (stack: Layer[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const path of pathsOf(layer.route.path)) {
          for (const method of Object.keys(layer.route.methods).filter((m) => m !== '_all')) routes.push({ method, path: join(prefix, path) });
        }
      } else if (layer.handle.stack) {
        for (const path of pathsOf(layer.rawPath)) walk(layer.handle.stack, join(prefix, path));
      } else if (layer.handle.name === 'mounted_app' || typeof layer.handle.set === 'function') {
        // An Express application: mounted by app.use (wrapped as mounted_app) or by router.use (as is).
        for (const path of pathsOf(layer.rawPath)) routes.push({ method: 'mount', path: join(prefix, path) });
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
  return routes;
}
