import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import type { Logger } from 'pino';
import type { ActorSystem } from '../actors/system.ts';
import { authenticate, type AuthEnv, type TokenEntry } from './auth.ts';
import { problemResponse, toProblem } from './problem.ts';
import type { Registry } from 'prom-client';
import { createMetrics } from './metrics.ts';
import { actorRoutes } from './routes/actors.ts';

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

  app.use('*', requestId({ headerName: 'x-request-id', limitLength: 64 }));
  app.use('*', async function logRequest(c, next) {
    const started = performance.now();
    await next();
    // Route patterns, not raw paths or query strings, so no identifier ends up in the log.
    logger.info(
      { reqId: c.get('requestId'), method: c.req.method, route: c.req.routePath, status: c.res.status, ms: Math.round(performance.now() - started) },
      'request',
    );
  });
  app.use('*', metrics.middleware);
  const tooLarge = (c: Context) => problemResponse(c, { status: 413, detail: `the body is larger than ${maxBodyBytes} bytes`, field: 'body' });
  const streamedLimit = bodyLimit({ maxSize: maxBodyBytes, onError: tooLarge });
  app.use('*', async function limitBody(c, next) {
    // Content-Length decides without touching the body; only a chunked body is counted as it
    // streams (that path builds a full web Request, which a plain body never needs).
    const length = c.req.header('content-length');
    if (length !== undefined && !c.req.header('transfer-encoding')) return Number(length) > maxBodyBytes ? tooLarge(c) : next();
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
