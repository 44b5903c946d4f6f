import type { Express, Request, RequestHandler } from 'express';
import { UNMATCHED_ROUTE, type Metrics } from '../observability/metrics.js';

/** nginx's "client closed request": the client went away before any response was sent. */
const CLIENT_CLOSED = 499;

interface Template {
  path: string;
  regexp: RegExp;
}

/** `/v1/datasets/:id` → a matcher with Express's defaults (case-insensitive, optional trailing slash). */
function compile(path: string): Template | undefined {
  // Only plain segments and `:params`: anything fancier is left unmatched rather than guessed.
  if (/[*{}()?+]/.test(path)) return undefined;
  const body = path
    .split('/')
    .map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.replace(/[.^$|[\]\\]/g, '\\$&')))
    .join('/');
  return { path, regexp: new RegExp(`^${body}/?$`, 'i') };
}

function routePaths(path: unknown): string[] {
  if (typeof path === 'string') return [path];
  if (Array.isArray(path)) return path.filter((p): p is string => typeof p === 'string');
  return [];
}

/**
 * Every route template of the app, for requests refused before routing
 * (401 from the key check, 429 from the rate limit) so they are still counted
 * under their route. Routers are mounted at the root in app.ts.
 */
function collectTemplates(app: Express): Template[] {
  const out: Template[] = [];
  const walk = (stack: unknown, depth: number) => {
    if (!Array.isArray(stack) || depth > 4) return;
    for (const layer of stack as Array<{ route?: { path?: unknown }; handle?: { stack?: unknown } }>) {
      if (layer.route) {
        for (const p of routePaths(layer.route.path)) {
          const t = compile(p);
          if (t) out.push(t);
        }
      } else if (layer.handle && Array.isArray(layer.handle.stack)) {
        walk(layer.handle.stack, depth + 1);
      }
    }
  };
  walk(app.router?.stack, 0);
  return out;
}

function pathname(req: Request): string {
  const url = req.originalUrl || req.url;
  const q = url.indexOf('?');
  return q >= 0 ? url.slice(0, q) : url;
}

/**
 * The route label of a finished request: the template of the route that
 * handled it (the alias that matched, for routes with several paths); for a
 * request refused before routing, the template its path would have matched;
 * else `unmatched`. Never the raw path.
 */
export function routeLabel(req: Request, status: number, templates: () => Template[]): string {
  const path = pathname(req);
  if (req.route) {
    const candidates = routePaths(req.route.path).map((p) => `${req.baseUrl}${p}`);
    const hit = candidates.find((c) => compile(c)?.regexp.test(path));
    return hit ?? candidates[0] ?? UNMATCHED_ROUTE;
  }
  if (status === 404) return UNMATCHED_ROUTE;
  return templates().find((t) => t.regexp.test(path))?.path ?? UNMATCHED_ROUTE;
}

/**
 * Times every request (REST and /graphql) and records it when the response
 * finishes, or when the client goes away first. Mount it first.
 */
export function metricsMiddleware(metrics: Metrics, app: Express): RequestHandler {
  let templates: Template[] | undefined;
  // Built on first use: the routes are mounted after this middleware.
  const lazyTemplates = () => (templates ??= collectTemplates(app));
  return (req, res, next) => {
    const started = performance.now();
    let recorded = false;
    const record = () => {
      if (recorded) return;
      recorded = true;
      const status = res.headersSent ? res.statusCode : CLIENT_CLOSED;
      // Kept for the request log, so both name routes the same way.
      res.locals.route = routeLabel(req, status, lazyTemplates);
      metrics.observeRequest({
        route: res.locals.route as string,
        method: req.method,
        status,
        durationSeconds: (performance.now() - started) / 1000,
        operationType: req.ctx?.operationType,
      });
    };
    res.once('finish', record);
    res.once('close', record);
    next();
  };
}
