import { Hono, type Context } from 'hono';
import { randomUUID } from 'node:crypto';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from 'pino';
import type { ActorSystem } from '../actors/system.ts';
import { authenticate, type AuthEnv, type TokenEntry } from './auth.ts';
import { problemResponse, toProblem } from './problem.ts';
import type { Registry } from 'prom-client';
import { createMetrics } from './metrics.ts';
import { actorRoutes } from './routes/actors.ts';
import { setHeader } from './request.ts';

export interface AppOptions {
  system: ActorSystem;
  tokens: TokenEntry[];
  logger: Logger;
  /** Resolves when storage (and Redis, when configured) answers; throws otherwise. */
  ready: () => Promise<void>;
  maxBodyBytes?: number;
  waitTimeoutMs?: number;
  /** Domain routes, mounted behind authentication. */
  routes?: Hono<AuthEnv>[];
  /** Routes that authenticate by other means (a signed webhook), mounted before the bearer check. */
  publicRoutes?: Hono<AuthEnv>[];
  /** Domain metrics, served with the runtime's at /metrics. */
  registries?: Registry[];
}

/** The HTTP API: everything but /healthz and /readyz needs a bearer token. */
export function createApp({ system, tokens, logger, ready, maxBodyBytes = 64 * 1024, waitTimeoutMs = 10_000, routes = [], publicRoutes = [], registries = [] }: AppOptions) {
  const app = new Hono<AuthEnv>();
  const metrics = createMetrics(system);

  // One middleware for what every request gets: an id (the caller's, when it sends a sane one),
  // its duration in the metrics and a log line. Route patterns, not raw paths or query
  // strings, so no identifier ends up in either.
  app.use('*', async function observe(c, next) {
    const started = performance.now();
    const given = c.req.header('x-request-id');
    const id = given && given.length <= 64 && !/[^\w\-=]/.test(given) ? given : randomUUID();
    c.set('requestId', id);
    setHeader(c, 'x-request-id', id);
    await next();
    const ms = performance.now() - started;
    metrics.observe(c.req.method, c.req.routePath, c.res.status, ms / 1000);
    if (logger.isLevelEnabled('info')) logger.info({ reqId: id, method: c.req.method, route: c.req.routePath, status: c.res.status, ms: Math.round(ms) }, 'request');
  });
  const tooLarge = (c: Context) => problemResponse(c, { status: 413, detail: `the body is larger than ${maxBodyBytes} bytes`, field: 'body' });
  const streamedLimit = bodyLimit({ maxSize: maxBodyBytes, onError: tooLarge });
  // Not async, as the bearer check: it hands back next()'s promise rather than wrapping it.
  app.use('*', function limitBody(c, next) {
    // Content-Length decides without touching the body; only a chunked body is counted as it
    // streams (that path builds a full web Request, which a plain body never needs).
    const length = c.req.header('content-length');
    if (length !== undefined && !c.req.header('transfer-encoding')) return Number(length) > maxBodyBytes ? Promise.resolve(tooLarge(c)) : next();
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next();
    return streamedLimit(c, next);
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    try {
      await ready();
      return c.json({ status: 'ready' });
    } catch (err) {
      logger.warn({ reqId: c.get('requestId'), err: (err as Error).message }, 'not ready');
      return problemResponse(c, { status: 503, detail: 'storage is not reachable' }, { 'retry-after': '1' });
    }
  });

  for (const r of publicRoutes) app.route('/', r);
  app.use('*', authenticate(tokens));
  app.get('/metrics', async (c) => {
    c.header('content-type', metrics.registry.contentType);
    const texts = await Promise.all([metrics.registry, ...registries].map((r) => r.metrics()));
    return c.body(texts.join('\n'));
  });
  app.route('/', actorRoutes(system, { waitTimeoutMs }));
  for (const r of routes) app.route('/', r);

  app.notFound((c) => problemResponse(c, { status: 404, detail: `no route ${c.req.method} ${c.req.path}` }));
  app.onError((err, c) => {
    const res = toProblem(err, c);
    if (res.status >= 500 && res.status !== 503) logger.error({ reqId: c.get('requestId'), err: { name: err.name, message: err.message, stack: err.stack } }, 'request failed');
    return res;
  });
  return app;
}
