import { randomBytes, randomInt } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it, type TestContext } from 'vitest';
import { startInsurerSimulator, type InsurerSimulator, type RecordedRequest } from '../../integrations/insurer/simulator.ts';
import { preciseNow } from '../../integrations/insurer/simulator-stats.ts';
import { withClient } from '../support/pgdb.ts';
import { freshStorage, killAllServers, startServer, type RunningServer, type TestStorage } from '../support/server.ts';

/**
 * Two real server processes on one Postgres database and one Redis, both configured with the
 * same insurer, against one simulator: a full sync started on A, single-patient syncs sent to
 * B, a pause sent to B that must stop A too, and a resume from either process. The insurer
 * must never see two requests at once.
 * Needs Redis (REDIS_URL, default redis://127.0.0.1:6379): in CI a missing Redis fails the
 * tests; elsewhere they are skipped with the reason. Reproduce with INSURER_CLUSTER_SEED=<seed>.
 */

const SEED = Number(process.env.INSURER_CLUSTER_SEED ?? randomInt(2 ** 31));
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Progress {
  runId: string | null;
  state: string;
  runState: string;
  counts: { listed: number; new: number; removed: number; synced: number; pending: number; retrying: number; cancelled_410: number; failed: number };
  requests: { made: number; failed: number; inFlight: number };
  waiting: { interactive: number; listing: number; bulk: number };
}

interface SyncView {
  syncId: string;
  status: string;
  kind: string;
  attempts: number;
  lastError: string | null;
}

interface PauseView {
  paused: boolean;
  changed: boolean;
  reason: string | null;
  inFlight: { node: string; what: string } | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const finished = (p: Progress) => p.runState === 'completed' || p.runState === 'failed';
const describeRequest = (r: RecordedRequest) => `#${r.id} ${r.path} start ${r.start.toFixed(1)} end ${r.end?.toFixed(1) ?? '(open)'} ${r.status}`;

/** Why Redis cannot be used, or null when it answers a PING. */
async function redisProblem(url: string): Promise<string | null> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
    return null;
  } catch (err) {
    return `Redis at ${url} is unreachable: ${(err as Error).message}`;
  } finally {
    client.disconnect();
  }
}

/** Fails in CI and skips elsewhere (with the reason printed) when Redis is not there. */
async function requireRedis(ctx: TestContext): Promise<void> {
  const problem = await redisProblem(REDIS_URL);
  if (!problem) return;
  if (process.env.CI) throw new Error(`${problem}; CI must run the cluster tests`);
  console.warn(`[insurer-cluster] skipped: ${problem}`);
  ctx.skip(problem);
}

async function json<T>(res: Response, status: number): Promise<T> {
  const body = (await res.json()) as T;
  expect(res.status, JSON.stringify(body)).toBe(status);
  return body;
}

/**
 * Who held the insurer's line, sampled from Redis every few ms (short holds slip through):
 * distinct requests per process (host:pid) and kind, so a failure can say who did what.
 */
class HolderWatch {
  readonly seen = new Map<string, Map<string, Set<string>>>();
  /** When each process was first and last seen holding the line (ms, `preciseNow`). */
  readonly span = new Map<string, [number, number]>();
  private running = true;
  private readonly loop: Promise<void>;

  constructor(redis: Redis, leaseKey: string) {
    this.loop = (async () => {
      while (this.running) {
        const holder = await redis.hget(leaseKey, 'holder');
        if (holder) {
          const h = JSON.parse(holder) as { node: string; what: string; requestId: string };
          const byWhat = this.seen.get(h.node) ?? new Map<string, Set<string>>();
          this.seen.set(h.node, byWhat);
          const ids = byWhat.get(h.what) ?? new Set<string>();
          byWhat.set(h.what, ids);
          ids.add(h.requestId);
          const now = preciseNow();
          this.span.set(h.node, [this.span.get(h.node)?.[0] ?? now, now]);
        }
        await sleep(2);
      }
    })();
  }

  /** Per process: requests by kind, and when it held the line (ms after `since`). */
  summary(since = 0): string {
    const when = (node: string) => {
      const [first, last] = this.span.get(node) ?? [since, since];
      return since ? ` (held ${(first - since).toFixed(0)}..${(last - since).toFixed(0)} ms)` : '';
    };
    return [...this.seen].map(([node, byWhat]) => `${node}: ${[...byWhat].map(([what, ids]) => `${what} ${ids.size}`).join(', ')}${when(node)}`).join('; ') || 'nobody';
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

interface Cluster {
  insurer: string;
  sim: InsurerSimulator;
  a: RunningServer;
  b: RunningServer;
  dbUrl: string;
  holders: HolderWatch;
  progress(server: RunningServer): Promise<Progress>;
  waitProgress(server: RunningServer, done: (p: Progress) => boolean, timeoutMs: number, everyMs?: number): Promise<Progress>;
  post<T>(server: RunningServer, route: string, status: number, body?: unknown): Promise<T>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await killAllServers();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** One fresh database, one simulator, and servers A then B on them with the same insurer. */
async function cluster(patientCount: number, seed: number): Promise<Cluster> {
  // The line's lease, fencing counter and pause mirror live in Redis under a fixed prefix, named
  // by insurer, and the mirror is ordered by an epoch kept in the database: an insurer id of its
  // own keeps this fresh database away from what earlier runs left in the same Redis.
  const insurer = `KK01-${randomBytes(4).toString('hex')}`;
  const lineKeys = `clinic-sync:line:{insurer:${insurer}}`;
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  cleanups.push(async () => {
    await redis.del(`${lineKeys}:control`, `${lineKeys}:lease`, `${lineKeys}:token`, `${lineKeys}:want`).catch(() => {});
    redis.disconnect();
  });
  const storage: TestStorage = await freshStorage('external', inject('databaseUrl'));
  cleanups.push(() => storage.cleanup());
  if (storage.storage.kind !== 'external') throw new Error('two processes need a database server');
  const sim = await startInsurerSimulator({ patientCount, pageSize: 100, failureRate: 0.8, latencyMs: 1, seed });
  cleanups.push(() => sim.close());
  const env = {
    REDIS_URL,
    // One key for both processes, given rather than left to whichever creates the key file first.
    DATA_KEYS: JSON.stringify({ keys: [{ id: 'k1', key: randomBytes(32).toString('base64') }], lookupKey: randomBytes(32).toString('base64') }),
    INSURERS: JSON.stringify([{ id: insurer, baseUrl: sim.url, timeoutMs: 1_000, dailyAt: '02:00', timeZone: 'Europe/Berlin' }]),
  };
  // One after the other: A's `wake` creates the insurer actor, so A owns it and runs the full
  // sync wherever it is asked for; B's `wake` is a duplicate, and B is a second node that only
  // appends to the insurer actor and owns what it creates itself.
  const a = await startServer(storage.storage, { env });
  const b = await startServer(storage.storage, { env });
  const holders = new HolderWatch(redis, `${lineKeys}:lease`);
  cleanups.push(() => holders.stop());

  const progress = async (server: RunningServer) => json<Progress>(await server.fetch(`/insurers/${insurer}/sync`), 200);
  return {
    insurer,
    sim,
    a,
    b,
    dbUrl: storage.storage.databaseUrl,
    holders,
    progress,
    async waitProgress(server, done, timeoutMs, everyMs = 50) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const p = await progress(server);
        if (done(p)) return p;
        if (Date.now() > deadline) {
          throw new Error(
            `progress condition not met within ${timeoutMs} ms; last: ${JSON.stringify(p)}\nline holders: ${holders.summary()}\n` +
              `A (pid ${a.pid}):\n${a.output().slice(-3000)}\nB (pid ${b.pid}):\n${b.output().slice(-3000)}`,
          );
        }
        await sleep(everyMs);
      }
    },
    async post<T>(server: RunningServer, route: string, status: number, body?: unknown) {
      return json<T>(await server.fetch(route, { method: 'POST', ...(body === undefined ? {} : { body: JSON.stringify(body) }) }), status);
    },
  };
}

/** No two requests overlapped at the insurer. Soft: the other checks still report. */
function expectOneAtATime(sim: InsurerSimulator): void {
  const overlapping: string[] = [];
  const sorted = [...sim.stats.requests].sort((x, y) => x.start - y.start);
  for (let i = 1; i < sorted.length; i++) {
    if ((sorted[i - 1]!.end ?? Infinity) > sorted[i]!.start) overlapping.push(`${describeRequest(sorted[i - 1]!)} / ${describeRequest(sorted[i]!)}`);
  }
  expect.soft(overlapping, 'overlapping requests').toEqual([]);
  expect.soft(sim.stats.maxInFlight, 'most requests in flight at once').toBe(1);
  expect.soft(sim.overlapTime(), 'ms with two or more requests in flight').toBe(0);
  expect.soft(sim.stats.missingIdempotencyKey).toBe(0);
}

/** What the database holds for the insurer after a completed run. */
async function storedCounts(dbUrl: string, insurer: string) {
  return withClient(dbUrl, async (c) => {
    const { rows } = await c.query<{ synced: number; uninsured: number; with_records: number; records_of_uninsured: number; open_syncs: number }>(
      `SELECT count(*) FILTER (WHERE insured AND records_synced_at IS NOT NULL)::int AS synced,
              count(*) FILTER (WHERE NOT insured)::int AS uninsured,
              (SELECT count(DISTINCT patient_id)::int FROM care_records WHERE insurer_id = $1) AS with_records,
              (SELECT count(*)::int FROM care_records c JOIN insurer_patients p USING (insurer_id, patient_id) WHERE NOT p.insured) AS records_of_uninsured,
              (SELECT count(*)::int FROM patient_syncs WHERE insurer_id = $1 AND status IN ('scheduled', 'running', 'retrying')) AS open_syncs
         FROM insurer_patients WHERE insurer_id = $1`,
      [insurer],
    );
    return rows[0];
  });
}

/** Successful list pages per cursor: more than one means two listings of the same run. */
function listPagesServedTwice(sim: InsurerSimulator): string[] {
  const byKey = new Map<string, number>();
  for (const r of sim.stats.requests) if (r.kind === 'list' && r.status === 200) byKey.set(r.idempotencyKey ?? '', (byKey.get(r.idempotencyKey ?? '') ?? 0) + 1);
  return [...byKey].filter(([, n]) => n > 1).map(([key, n]) => `${key} x${n}`);
}

describe('insurer sync on two processes sharing Postgres and Redis', () => {
  it('full sync on A, single syncs and a pause on B: one request at a time, A stops too, the run completes', async (ctx) => {
    await requireRedis(ctx);
    const t0 = Date.now();
    const PATIENTS = 400;
    // Every wait draws on one budget, so a stall fails with its diagnostics before the test times out.
    const left = () => Math.max(1_000, t0 + 165_000 - Date.now());
    const c = await cluster(PATIENTS, SEED);
    const { insurer, sim, a, b } = c;

    const { runId } = await c.post<{ runId: string }>(a, `/insurers/${insurer}/sync`, 202);
    const listed = await c.waitProgress(b, (p) => p.counts.listed > 0 || finished(p), left(), 20);
    expect(finished(listed), JSON.stringify(listed)).toBe(false);
    // B has nothing queued of its own yet: what its progress shows waiting for the line is A's.
    const seenOnB = await c.waitProgress(b, (p) => p.waiting.listing + p.waiting.bulk > 0 || finished(p), left(), 20);
    expect(finished(seenOnB), JSON.stringify(seenOnB)).toBe(false);
    // A run starts once, whichever process is asked: B finds the run A recorded.
    expect((await c.post<{ runId: string }>(b, `/insurers/${insurer}/sync`, 409)).runId).toBe(runId);

    // Single-patient syncs on B for patients A's listing has stored.
    const pids = sim
      .patientIds()
      .slice(0, listed.counts.listed)
      .filter((id) => !sim.isGone(id))
      .slice(0, 5);
    expect(pids).toHaveLength(5);
    // Until the resume, the insurer answers in 25 ms instead of 1: the bulk work left (hundreds
    // of requests) then outlasts the singles and the pause however loaded the machine is, so the
    // pause always meets a run in progress.
    sim.settings.latencyMs = 25;
    const singles: { pid: string; syncId: string; ackMs: number; ackedAt: number }[] = [];
    for (const pid of pids) {
      const t = performance.now();
      const body = await c.post<{ syncId: string; status: string }>(b, `/insurers/${insurer}/patients/${pid}/sync`, 202);
      const ackMs = performance.now() - t;
      expect(body.status).toBe('scheduled');
      expect(ackMs, `ack of the single sync of ${pid}`).toBeLessThan(1_000);
      singles.push({ pid, syncId: body.syncId, ackMs, ackedAt: preciseNow() });
    }
    const results = await Promise.all(
      singles.map(async ({ pid, syncId }) => {
        const deadline = Date.now() + Math.min(60_000, left());
        for (;;) {
          const view = await json<SyncView>(await b.fetch(`/insurers/${insurer}/patients/${pid}/sync/${syncId}`), 200);
          if (view.status === 'done' || view.status === 'failed' || view.status === 'cancelled_410') return { pid, ...view };
          if (Date.now() > deadline) {
            throw new Error(
              `single sync ${syncId} of ${pid} not finished in time: ${JSON.stringify(view)}; progress ${JSON.stringify(await c.progress(a))}; line holders: ${c.holders.summary()}\n` +
                `A (pid ${a.pid}):\n${a.output().slice(-3000)}\nB (pid ${b.pid}):\n${b.output().slice(-3000)}`,
            );
          }
          await sleep(20);
        }
      }),
    );
    const singlesDoneMs = preciseNow() - singles[0]!.ackedAt;
    for (const r of results) expect(r, `single sync of ${r.pid}`).toMatchObject({ status: 'done', kind: 'interactive' });
    const afterSingles = await c.progress(a);
    // How long each single waited for the line (diagnostics: the line is shared with A's bulk work).
    const firstRequestAfter = ({ pid, ackedAt }: { pid: string; ackedAt: number }) => {
      const first = sim.stats.requests.find((r) => r.patientId === pid && r.start > ackedAt);
      return first ? (first.start - ackedAt).toFixed(0) : '-';
    };
    expect(finished(afterSingles), `the run ended before the pause: ${JSON.stringify(afterSingles)}`).toBe(false);

    // Pause on B: from its answer on, nothing from A either (the request in flight excepted).
    const pause = await c.post<PauseView>(b, `/insurers/${insurer}/pause`, 200, { reason: 'insurer phoned' });
    const pausedAt = preciseNow();
    expect(pause).toMatchObject({ paused: true, changed: true });
    expect((await c.progress(a)).state, 'A sees the pause').toBe('paused');
    await sleep(1_000); // the quiet period being checked
    const afterPause = sim.stats.requests.filter((r) => r.start > pausedAt);
    expect(afterPause.map(describeRequest), `requests started after the pause answer; line holders: ${c.holders.summary()}`).toEqual([]);
    const inFlightAtPause = sim.stats.requests.filter((r) => r.start <= pausedAt && (r.end ?? Infinity) > pausedAt);
    expect(inFlightAtPause.length).toBeLessThanOrEqual(1);
    if (inFlightAtPause.length) expect(pause.inFlight, `in flight at the pause: ${describeRequest(inFlightAtPause[0]!)}`).not.toBeNull();

    sim.settings.latencyMs = 1;
    expect(await c.post(b, `/insurers/${insurer}/resume`, 200)).toMatchObject({ paused: false, changed: true });
    // The insurer's safety is checked even when the run does not complete.
    const done = await c.waitProgress(a, finished, left()).finally(() => expectOneAtATime(sim));
    await c.holders.stop();
    const gone = sim.patientIds().filter((id) => sim.isGone(id)).length;
    expect.soft(listPagesServedTwice(sim), 'list pages fetched successfully more than once (two listings of one run)').toEqual([]);
    expect.soft(done).toMatchObject({
      runId,
      runState: 'completed',
      counts: { listed: PATIENTS, new: PATIENTS, removed: 0, synced: PATIENTS - gone, pending: 0, retrying: 0, cancelled_410: gone, failed: 0 },
    });
    expect.soft(await c.progress(b)).toMatchObject({ runId, runState: 'completed' });
    expect.soft(await storedCounts(c.dbUrl, insurer)).toEqual({ synced: PATIENTS - gone, uninsured: gone, with_records: PATIENTS - gone, records_of_uninsured: 0, open_syncs: 0 });
    expect.soft(await Promise.all([a.stop(), b.stop()]), 'exit codes of A and B on SIGTERM').toEqual([0, 0]);

    console.log(
      `[insurer-cluster] seed=${SEED} singles=${results.map((r) => `${r.pid}:${r.status}/${r.attempts}`).join(',')} ` +
        `ackMs=${singles.map((s) => s.ackMs.toFixed(0)).join(',')} firstRequestAfterAckMs=${singles.map(firstRequestAfter).join(',')} progressAfterSingles=${JSON.stringify(afterSingles.counts)} ` +
        `inFlightAtPause=${inFlightAtPause.map(describeRequest).join('; ') || 'none'} singlesDoneMs=${singlesDoneMs.toFixed(0)} ` +
        `holders(ms after the first single's ack)=[${c.holders.summary(singles[0]!.ackedAt)}] ` +
        `counts=${JSON.stringify(done.counts)} requests=${sim.stats.requests.length} made=${done.requests.made} gone=${gone} totalMs=${Date.now() - t0}`,
    );
  }, 180_000);

  it('a pause on B and a resume on A: a single sync queued on B meanwhile goes out, and the run completes', async (ctx) => {
    await requireRedis(ctx);
    const t0 = Date.now();
    const left = () => Math.max(1_000, t0 + 165_000 - Date.now());
    const PATIENTS = 200;
    const c = await cluster(PATIENTS, SEED + 1);
    const { insurer, sim, a, b } = c;

    const { runId } = await c.post<{ runId: string }>(a, `/insurers/${insurer}/sync`, 202);
    await c.waitProgress(a, (p) => p.counts.synced >= 10 || finished(p), left(), 20);
    await c.post(b, `/insurers/${insurer}/pause`, 200, { reason: 'insurer phoned' });
    const pausedAt = preciseNow();
    const paused = await c.progress(a);
    expect(finished(paused), `the run ended before the pause: ${JSON.stringify(paused)}`).toBe(false);

    // While paused, B takes a single sync of a patient A has already synced: stored and
    // answered at once, but not sent.
    const pid = await withClient(c.dbUrl, async (db) => {
      const { rows } = await db.query<{ patient_id: string }>(
        `SELECT patient_id FROM patient_syncs WHERE run_id = $1 AND status = 'done' ORDER BY patient_id LIMIT 1`,
        [runId],
      );
      return rows[0]!.patient_id;
    });
    const single = await c.post<{ syncId: string; status: string }>(b, `/insurers/${insurer}/patients/${pid}/sync`, 202);
    expect(single.status).toBe('scheduled');
    await sleep(500);
    expect(sim.stats.requests.filter((r) => r.start > pausedAt).map(describeRequest), 'requests after the pause answer').toEqual([]);

    // Resume on the other process: requests flow again, from whichever process has work.
    expect(await c.post(a, `/insurers/${insurer}/resume`, 200)).toMatchObject({ paused: false, changed: true });
    const resumedAt = preciseNow();
    try {
      const deadline = Date.now() + 5_000;
      while (!sim.stats.requests.some((r) => r.start > resumedAt) && Date.now() < deadline) await sleep(20);
      const firstAfter = sim.stats.requests.find((r) => r.start > resumedAt);
      expect(
        firstAfter && describeRequest(firstAfter),
        `no request reached the insurer within 5 s of the resume on A; progress ${JSON.stringify(await c.progress(a))}; line holders: ${c.holders.summary()}`,
      ).toBeDefined();
      const until = Date.now() + Math.min(60_000, left());
      let view = await json<SyncView>(await b.fetch(`/insurers/${insurer}/patients/${pid}/sync/${single.syncId}`), 200);
      while (!['done', 'failed', 'cancelled_410'].includes(view.status) && Date.now() < until) {
        await sleep(20);
        view = await json<SyncView>(await b.fetch(`/insurers/${insurer}/patients/${pid}/sync/${single.syncId}`), 200);
      }
      expect(view, `single sync of ${pid} queued on B during the pause; line holders: ${c.holders.summary()}`).toMatchObject({ status: 'done', kind: 'interactive' });
      const done = await c.waitProgress(a, finished, left());
      expect(done).toMatchObject({ runId, runState: 'completed', counts: { failed: 0, pending: 0, retrying: 0 } });
      expect.soft(await Promise.all([a.stop(), b.stop()]), 'exit codes of A and B on SIGTERM').toEqual([0, 0]);
      console.log(
        `[insurer-cluster resume-elsewhere] seed=${SEED + 1} single=${pid}:${view.status}/${view.attempts} firstRequestAfterResumeMs=${(firstAfter!.start - resumedAt).toFixed(0)} ` +
          `counts=${JSON.stringify(done.counts)} holders=[${c.holders.summary()}] requests=${sim.stats.requests.length} totalMs=${Date.now() - t0}`,
      );
    } finally {
      // The insurer's safety is checked whether or not the run got through.
      expectOneAtATime(sim);
    }
  }, 180_000);
});
