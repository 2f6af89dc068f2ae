import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { ManualClock } from '../../actors/clock.ts';
import { ActorSystem } from '../../actors/system.ts';
import { createApp } from '../../http/app.ts';
import { createConsultationModule, type ConsultationModule } from '../../http/modules/consultations/module.ts';
import { consultationReport } from '../../http/modules/consultations/report.ts';
import { consultationRoutes } from '../../http/modules/consultations/routes.ts';
import { pridokWebhook } from '../../http/modules/consultations/webhook.ts';
import { createCommsClient } from '../../integrations/comms/client.ts';
import { startCommsSimulator, type CommsSimulator } from '../../integrations/comms/simulator.ts';
import { makeReferral, signedRequest } from '../../integrations/pridok/simulator.ts';
import type { Referral } from '../../integrations/pridok/schemas.ts';
import { createFieldCipher } from '../../storage/crypto.ts';
import type { Db } from '../../storage/db.ts';
import { testDb, type TestDb } from './db.ts';
import { appRequest } from './request.ts';

export const TOKENS = {
  secretary: 'secretary-token-0123456789abcdef',
  doctor: 'doctor-token-0123456789abcdef01',
  doctor2: 'doctor2-token-0123456789abcdef0',
  admin: 'admin-token-0123456789abcdef012',
  auditor: 'auditor-token-0123456789abcdef0',
  integration: 'integration-token-0123456789abc',
} as const;
export const SECRET = 'webhook-secret-0123456789abcdef';
export const T0 = Date.parse('2026-05-04T08:00:00Z');

export interface ConsultationHarness {
  t: TestDb;
  clock: ManualClock;
  comms: CommsSimulator;
  readonly system: ActorSystem;
  readonly module: ConsultationModule;
  req(path: string, init?: { method?: string; body?: unknown; token?: keyof typeof TOKENS | null; headers?: Record<string, string> }): Promise<Response>;
  /** Posts a referral signed like the record system, at the clock's time unless told. */
  refer(overrides?: Partial<Referral>, opts?: { timestampSec?: number; secret?: string; raw?: string }): Promise<{ res: Response; referral: Referral }>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** The consultation module on a manual clock (SLA and follow-up timers move when the test says), a real comms simulator. */
export async function consultationHarness(o: { slaMs?: number } = {}): Promise<ConsultationHarness> {
  const t = await testDb();
  const clock = new ManualClock(T0);
  const comms = await startCommsSimulator({});
  const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
  const cipher = createFieldCipher({ keys: [{ id: 'k1', key: randomBytes(32) }], lookupKey: randomBytes(32) });
  let seed = 1;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const boot = async (db: Db) => {
    const system = new ActorSystem({ db, clock, logger, housekeepingIntervalMs: 1_000 });
    clock.settle = () => system.settled();
    const module = createConsultationModule({
      db,
      system,
      clock,
      logger,
      cipher,
      settings: {
        webhookSecret: SECRET,
        referringInsurer: 'KK01',
        commsUrl: comms.url,
        consultation: { slaMs: o.slaMs ?? 1_800_000, backoffMs: 1_000, maxBackoffMs: 4_000 },
        booking: { followUpMs: 60_000, expireMs: 600_000 },
      },
      // A short timeout, so a test can make the provider's answers arrive too late to count.
      comms: createCommsClient({ baseUrl: comms.url, timeoutMs: 1_000 }),
    });
    await system.start();
    const app = createApp({
      system,
      logger,
      tokens: [
        { token: TOKENS.secretary, role: 'secretary', subject: 'sec-1' },
        { token: TOKENS.doctor, role: 'doctor', subject: 'dr-1' },
        { token: TOKENS.doctor2, role: 'doctor', subject: 'dr-2' },
        { token: TOKENS.admin, role: 'admin', subject: 'ops-1' },
        { token: TOKENS.auditor, role: 'auditor', subject: 'aud-1' },
        { token: TOKENS.integration, role: 'integration', subject: 'int-1' },
      ],
      ready: async () => {},
      routes: [consultationRoutes({ db, system, clock, module }), consultationReport({ db })],
      publicRoutes: [pridokWebhook({ db, system, clock, module })],
      registries: [module.metrics.registry],
    });
    return { system, module, app };
  };
  let node = await boot(t.db);
  const req: ConsultationHarness['req'] = (path, init = {}) =>
    appRequest(node.app, path, { ...init, token: init.token === null ? null : TOKENS[init.token ?? 'secretary'] });
  return {
    t,
    clock,
    comms,
    get system() {
      return node.system;
    },
    get module() {
      return node.module;
    },
    req,
    async refer(overrides = {}, opts = {}) {
      const referral = makeReferral(random, overrides, clock.now());
      const signed = signedRequest(opts.secret ?? SECRET, referral, opts.timestampSec ?? Math.floor(clock.now() / 1000));
      const res = await node.app.request('/webhooks/pridok/referrals', { method: 'POST', headers: signed.headers, body: opts.raw ?? signed.body });
      return { res, referral };
    },
    async restart() {
      await node.system.stop();
      node = await boot(t.reopen());
    },
    async close() {
      await node.system.stop();
      await comms.close();
      await t.cleanup();
    },
  };
}
