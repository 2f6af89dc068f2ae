import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { insurerHarness, until, type InsurerHarness } from '../support/insurer.ts';
import { freePort } from '../support/server.ts';

/**
 * Redis lost while a sync runs: a Redis of the test's own (the machine's redis-server, no
 * persistence) is killed mid-run and started again empty, as a crashed Redis comes back.
 */
const progressOf = async (h: InsurerHarness) => (await (await h.req('/insurers/KK01/sync')).json()) as any;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const failed = new Promise<never>((_, reject) => child.once('error', (err) => reject(new Error(`redis-server could not start: ${err.message}`))));
  for (let i = 0; ; i++) {
    const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    const up = await Promise.race([failed, probe.connect().then(() => probe.ping()).catch(() => null)]);
    probe.disconnect();
    if (up === 'PONG') return child;
    if (i > 100) throw new Error('redis-server did not answer within 5 s');
    await sleep(50);
  }
}

describe('insurer sync when Redis is lost', () => {
  let h: InsurerHarness | undefined;
  let redis: ChildProcess | undefined;
  afterEach(async () => {
    await h?.close();
    redis?.kill('SIGKILL');
    h = redis = undefined;
  });

  it('sends nothing without a valid lease while Redis is gone, waits, and completes the run once it is back', async () => {
    const port = await freePort();
    redis = await startRedis(port);
    // A short longest lease: after Redis comes back empty, the line stays busy this long (a
    // lease lost with its data might still have had a request in flight).
    const maxTtlMs = 5_000;
    h = await insurerHarness({ patientCount: 300, pageSize: 100, failureRate: 0.8, latencyMs: 2, seed: 11 }, { lineOn: 'redis', redisUrl: `redis://127.0.0.1:${port}`, maxTtlMs });
    await h.req('/insurers/KK01/sync', { method: 'POST' });
    await until(() => progressOf(h!), (p) => p.requests.made > 100);

    redis.kill('SIGKILL');
    const lostAt = performance.timeOrigin + performance.now();
    await sleep(6_000);
    // A held lease is used only while at least the request timeout plus 2 s of it is known to
    // be left; it was taken for 4 s (1 s timeout + 2 s margin + 1 s): nothing starts later than
    // 1 s after Redis was last asked, so nothing at all from 1.5 s after it went away.
    const sentWithoutRedis = h.sim.stats.requests.filter((r) => r.start > lostAt + 1_500);
    expect(sentWithoutRedis).toEqual([]);
    // Progress still answers, with the pause state from Postgres.
    const stalled = await progressOf(h);
    expect(stalled.state).toMatch(/^(listing|syncing)$/);
    expect(stalled.pause.paused).toBe(false);

    redis = await startRedis(port);
    const backAt = performance.timeOrigin + performance.now();
    const p = await until(() => progressOf(h!), (x) => x.runState === 'completed' || x.runState === 'failed', 120_000);
    expect(p.runState).toBe('completed');
    expect(p.counts.synced + p.counts.cancelled_410).toBe(300);
    // Redis came back empty: the line stayed busy for maxTtlMs before anyone took it again.
    const firstAfter = h.sim.stats.requests.find((r) => r.start > backAt);
    expect(firstAfter!.start - backAt).toBeGreaterThanOrEqual(maxTtlMs - 200);
    expect(h.sim.stats.maxInFlight).toBe(1);
  }, 180_000);
});
