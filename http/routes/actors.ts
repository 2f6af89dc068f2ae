import { Hono } from 'hono';
import { z } from 'zod';
import type { ActorSystem } from '../../actors/system.ts';
import { requireRole, type AuthEnv } from '../auth.ts';
import { ProblemError } from '../problem.ts';
import { decodeCursor, encodeCursor, parseQuery, readJson, setHeader } from '../request.ts';

const boolParam = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

/** The generic actor routes (admin): send events, read snapshots, history, lists, machines. */
export function actorRoutes(system: ActorSystem, { waitTimeoutMs }: { waitTimeoutMs: number }) {
  const app = new Hono<AuthEnv>();
  // Per path, not '*': this app is mounted at '/' beside the domain routes.
  for (const path of ['/actors', '/actors/*', '/machines', '/machines/*']) app.use(path, requireRole('admin'));

  const sendQuery = z.object({
    wait: boolParam.optional(),
    timeoutMs: z.coerce.number().int().min(1).max(waitTimeoutMs).optional(),
  });

  app.post('/actors/:type/:key/events', async (c) => {
    const { type, key } = c.req.param();
    // Unknown type → 404 before anything else is read.
    if (system.type(type).domainOnly) throw new ProblemError(403, `events to ${type} actors go through their own API, not this route`, 'type');
    // Most sends have no query string, and nothing to check then.
    const query = c.req.url.includes('?') ? parseQuery(c, sendQuery) : {};
    const body = await readJson(c);
    const idempotencyKey = c.req.header('idempotency-key');
    const opts = idempotencyKey === undefined ? {} : { idempotencyKey };
    if (query.wait) {
      const r = await system.sendAndWait(type, key, body, { ...opts, ...(query.timeoutMs ? { timeoutMs: query.timeoutMs } : {}) });
      if (r.duplicate) c.header('idempotent-replayed', 'true');
      return c.json({ seq: r.seq, duplicate: r.duplicate, state: r.state, snapshot: r.snapshot }, 200);
    }
    const r = await system.send(type, key, body, opts);
    if (r.duplicate) c.header('idempotent-replayed', 'true');
    setHeader(c, 'location', `/actors/${encodeURIComponent(type)}/${encodeURIComponent(key)}`);
    return c.json({ seq: r.seq, duplicate: r.duplicate }, 202);
  });

  app.get('/actors/:type/:key', async (c) => {
    const { type, key } = c.req.param();
    return c.json(await system.get(type, key));
  });

  const historyQuery = z.object({
    after: z.coerce.number().int().min(0).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  });

  app.get('/actors/:type/:key/history', async (c) => {
    const { type, key } = c.req.param();
    const { after, limit } = parseQuery(c, historyQuery);
    const items = await system.history(type, key, { after: after ?? 0, limit });
    const last = items.at(-1);
    return c.json({ items, next: items.length === limit && last ? last.id : null });
  });

  const listQuery = z.object({
    type: z.string({ error: 'type is required' }).min(1, 'type is required'),
    state: z
      .string()
      .regex(/^[\w.(),-]{1,200}$/, 'state must be a state name like "armed" or "sync.paging"')
      .optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z.string().max(400).optional(),
  });

  app.get('/actors', async (c) => {
    const q = parseQuery(c, listQuery);
    const after = decodeCursor(q.cursor) ?? '';
    const rows = await system.list(q.type, { state: q.state, after, limit: q.limit });
    const items = rows.map((r) => ({
      type: q.type,
      key: r.key,
      state: r.state,
      status: r.status,
      processedSeq: r.processed_seq,
      updatedAt: r.updated_at.toISOString(),
    }));
    const last = items.at(-1);
    return c.json({ items, nextCursor: items.length === q.limit && last ? encodeCursor(last.key) : null });
  });

  app.get('/machines', (c) =>
    c.json({
      items: system.actorTypes.map((t) => ({ type: t.name, events: Object.keys(t.events), idleTimeoutMs: t.idleTimeoutMs, mailboxSize: t.mailboxSize })),
    }),
  );

  app.get('/machines/:type', (c) => c.json(system.definition(c.req.param('type'))));

  return app;
}
