import pino from 'pino';
import { ManualClock } from '../../actors/clock.ts';
import { ActorSystem } from '../../actors/system.ts';
import { createApp } from '../../http/app.ts';
import { createPimsModule, type PimsModule } from '../../http/modules/pims/module.ts';
import { pimsRoutes } from '../../http/modules/pims/routes.ts';
import { startPimsSimulator, type PimsSimulator, type PimsSimulatorOptions } from '../../integrations/pims/simulator.ts';
import type { VisitTiming } from '../../machines/visit.ts';
import { createCoordination } from '../../storage/coordination/index.ts';
import type { Coordination } from '../../storage/coordination/types.ts';
import type { Db } from '../../storage/db.ts';
import { testDb, type TestDb } from './db.ts';
import { appRequest } from './request.ts';

export const INTEGRATION = 'integration-token-0123456789ab';
export const ADMIN = 'admin-token-0123456789abcdef';
export const T0 = Date.parse('2026-03-02T08:00:00Z');

export interface PimsHarness {
  t: TestDb;
  sim: PimsSimulator;
  clock: ManualClock;
  system: ActorSystem;
  module: PimsModule;
  coordination: Coordination;
  req(path: string, init?: { method?: string; body?: unknown; token?: string }): Promise<Response>;
  /** Stops the runtime and starts another on the same database, clock and simulator (a process restart). */
  restart(whileDown?: () => void): Promise<void>;
  /** Fetches of one visit's line items the simulator has seen. */
  fetches(visitId: string): number;
  close(): Promise<void>;
}

export interface PimsHarnessOptions {
  sim?: PimsSimulatorOptions;
  ratePerSec?: number;
  censusIntervalMs?: number;
  timing?: Partial<VisitTiming>;
  /** Which PostgreSQL: the machine's (DATABASE_URL) or the embedded one. */
  storage?: 'default' | 'embedded';
}

/**
 * The visit module in this process on a fresh schema, its runtime on a manual clock (durable
 * timers move only when the test advances it), against a real simulator. The rate limit is on
 * Redis when REDIS_URL is set (CI), in-process otherwise.
 */
export async function pimsHarness(o: PimsHarnessOptions = {}): Promise<PimsHarness> {
  const t = await testDb(o.storage ?? 'default');
  const clock = new ManualClock(T0);
  const sim = await startPimsSimulator({ visitCount: 0, seed: 11, now: () => clock.now(), ...o.sim });
  const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
  const coordination = await createCoordination({ redisUrl: process.env.REDIS_URL, keyPrefix: `t${Math.random().toString(36).slice(2)}:` });
  const boot = async (db: Db) => {
    const system = new ActorSystem({ db, clock, logger, housekeepingIntervalMs: 1_000 });
    clock.settle = () => system.settled();
    const module = createPimsModule({
      db,
      system,
      clock,
      logger,
      limiter: coordination.rateLimiter,
      pubsub: coordination.pubsub,
      settings: {
        baseUrl: sim.url,
        ratePerSec: o.ratePerSec ?? 500,
        timeoutMs: 2_000,
        censusIntervalMs: o.censusIntervalMs ?? 120_000,
        timing: { maxAgeMs: 60_000, errorAfter: 3, backoffMs: 1_000, maxBackoffMs: 8_000, errorRetryMs: 30_000, retentionMs: 3_600_000, ...o.timing },
      },
    });
    await system.start();
    await module.start();
    const app = createApp({
      system,
      logger,
      tokens: [
        { token: INTEGRATION, role: 'integration', subject: 'pims-hooks' },
        { token: ADMIN, role: 'admin', subject: 'ops-1' },
      ],
      ready: async () => {},
      routes: [pimsRoutes({ db, system, clock, module })],
      registries: [module.metrics],
    });
    return { system, module, app };
  };
  let node = await boot(t.db);
  const req = (path: string, init: { method?: string; body?: unknown; token?: string } = {}) => appRequest(node.app, path, { ...init, token: init.token ?? INTEGRATION });
  return {
    t,
    sim,
    clock,
    get system() {
      return node.system;
    },
    get module() {
      return node.module;
    },
    coordination,
    req,
    fetches: (id) => sim.stats.byVisit(id),
    async restart(whileDown) {
      await node.system.stop();
      await node.module.stop();
      whileDown?.();
      node = await boot(t.reopen());
    },
    async close() {
      await node.system.stop();
      await node.module.stop();
      await coordination.close();
      await sim.close();
      await t.cleanup();
    },
  };
}
