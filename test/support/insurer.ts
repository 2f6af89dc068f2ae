import pino from 'pino';
import { systemClock } from '../../actors/clock.ts';
import { ActorSystem } from '../../actors/system.ts';
import { createApp } from '../../http/app.ts';
import { createInsurerModule } from '../../http/modules/insurer/module.ts';
import { insurerRoutes } from '../../http/modules/insurer/routes.ts';
import { startInsurerSimulator, type InsurerSimulator, type InsurerSimulatorOptions } from '../../integrations/insurer/simulator.ts';
import { createFieldCipher } from '../../storage/crypto.ts';
import { createLine } from '../../storage/line/index.ts';
import type { Line } from '../../storage/line/types.ts';
import { testDb, type TestDb } from './db.ts';
import { appRequest } from './request.ts';
import { dropKeys } from './redis.ts';
import { randomBytes, randomUUID } from 'node:crypto';

export const ADMIN = 'admin-token-0123456789abcdef';
export const AUDITOR = 'auditor-token-0123456789abcdef';

export interface InsurerHarness {
  t: TestDb;
  sim: InsurerSimulator;
  system: ActorSystem;
  line: Line;
  module: ReturnType<typeof createInsurerModule>;
  app: ReturnType<typeof createApp>;
  req(path: string, init?: { method?: string; body?: unknown; token?: string }): Promise<Response>;
  close(): Promise<void>;
}

/**
 * Where the tests put the insurer line: always Postgres alone; Redis too when REDIS_URL is set
 * (CI), where a Redis that cannot be reached fails the test.
 */
export const lineKinds = process.env.REDIS_URL ? (['postgres', 'redis'] as const) : (['postgres'] as const);
export type LineKind = 'postgres' | 'redis';

/** The insurer module in this process, on a fresh schema, against a real simulator. */
export async function insurerHarness(
  simOptions: InsurerSimulatorOptions,
  {
    lineOn = 'postgres',
    tuning = { backoff: { baseMs: 20, capMs: 500 } },
    redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    maxTtlMs,
  }: {
    lineOn?: LineKind;
    tuning?: { backoff: { baseMs: number; capMs: number } };
    /** Another Redis than REDIS_URL (a test that stops it). */
    redisUrl?: string;
    /** The line's longest lease, and how long it stays busy after Redis lost its data. */
    maxTtlMs?: number;
  } = {},
): Promise<InsurerHarness> {
  const t = await testDb();
  const sim = await startInsurerSimulator(simOptions);
  const clock = systemClock;
  const logger = pino({ level: 'silent' });
  const system = new ActorSystem({ db: t.db, clock, logger });
  const keyPrefix = `test:${randomUUID()}:`;
  // Connection errors (a test that stops Redis) are expected: commands still reject on their own.
  const line = await createLine({ db: t.reopen(), maxTtlMs, onError: () => {}, ...(lineOn === 'redis' ? { redis: { url: redisUrl, keyPrefix } } : {}) });
  const cipher = createFieldCipher({ keys: [{ id: 'k1', key: randomBytes(32) }], lookupKey: randomBytes(32) });
  const module = createInsurerModule({
    db: t.db,
    system,
    clock,
    logger,
    cipher,
    lineSpec: { db: { connectionString: t.url, schema: t.schema }, redis: lineOn === 'redis' ? { url: redisUrl, keyPrefix } : undefined, maxTtlMs },
    node: 'test',
    insurers: [{ id: 'KK01', baseUrl: sim.url, timeoutMs: 1_000, dailyAt: '02:00', timeZone: 'Europe/Berlin' }],
    tuning,
  });
  await system.start();
  await module.start();
  const app = createApp({
    system,
    logger,
    tokens: [
      { token: ADMIN, role: 'admin', subject: 'ops-1' },
      { token: AUDITOR, role: 'auditor', subject: 'audit-1' },
    ],
    ready: async () => {},
    routes: [insurerRoutes({ db: t.db, system, clock, line, module })],
  });
  const req = (path: string, init: { method?: string; body?: unknown; token?: string } = {}) => appRequest(app, path, { ...init, token: init.token ?? ADMIN });
  return {
    t,
    sim,
    system,
    line,
    module,
    app,
    req,
    async close() {
      await module.stop();
      await system.stop();
      await line.close();
      if (lineOn === 'redis') await dropKeys(redisUrl, keyPrefix);
      await sim.close();
      await t.cleanup();
    },
  };
}

/** Polls `read` until `done` holds, or fails after `timeoutMs`. */
export async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = Number(process.env.UNTIL_MS ?? 60_000), everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last: ${JSON.stringify(v).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

