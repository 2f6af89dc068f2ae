import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { PimsGate } from '../../http/modules/pims/gate.ts';
import { createCoordination, type Coordination } from '../../storage/coordination/index.ts';

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Most grants seen in any window of `windowMs` (sliding over the sorted grant times). */
function maxPerWindow(times: number[], windowMs: number): number {
  const t = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i]! - t[j]! >= windowMs) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

describe('the practice-system gate, shared by two processes on Redis', () => {
  const open: Coordination[] = [];
  const gates: PimsGate[] = [];
  afterEach(async () => {
    await Promise.all(gates.splice(0).map((g) => g.close()));
    await Promise.all(open.splice(0).map((c) => c.close()));
  });

  async function twoProcesses(ratePerSec: number) {
    const keyPrefix = `t${randomUUID().slice(0, 8)}:`;
    // Two coordinators with their own Redis connections, as two server processes have.
    for (let i = 0; i < 2; i++) open.push(await createCoordination({ redisUrl, keyPrefix }));
    expect(open.map((c) => c.kind)).toEqual(['redis', 'redis']);
    const made = open.map((c) => new PimsGate({ limiter: c.rateLimiter, pubsub: c.pubsub, bucket: 'pims:sim', ratePerSec }));
    gates.push(...made);
    // Let the hold subscriptions become active.
    await new Promise((r) => setTimeout(r, 100));
    return made;
  }

  it('never lets the two together exceed the rate, and serves each in turn', async () => {
    const rate = 40;
    const [a, b] = await twoProcesses(rate);
    const granted: number[] = [];
    const turns = (g: PimsGate, n: number) => Promise.all(Array.from({ length: n }, () => g.turn().then(() => granted.push(performance.now()))));
    const t0 = performance.now();
    await Promise.all([turns(a!, 40), turns(b!, 40)]);
    const took = performance.now() - t0;
    expect(granted).toHaveLength(80);
    // 80 grants at 40/s, burst 1: about two seconds, never more than the rate in any second.
    expect(maxPerWindow(granted, 1_000)).toBeLessThanOrEqual(rate + 1);
    expect(took).toBeGreaterThanOrEqual(1_900);
    expect(a!.stats.granted + b!.stats.granted).toBe(80);
  }, 20_000);

  it("a 429's Retry-After seen by one process holds the other too", async () => {
    const [a, b] = await twoProcesses(1_000);
    await b!.turn();
    a!.hold(600);
    await new Promise((r) => setTimeout(r, 50)); // the message crosses Redis
    const t0 = performance.now();
    await b!.turn();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(450);
  }, 10_000);

  it('a caller that gives up leaves the queue; the next one still gets its turn', async () => {
    const [a] = await twoProcesses(2);
    await a!.turn();
    const gone = new AbortController();
    const waiting = a!.turn(gone.signal);
    gone.abort(new Error('checked out'));
    await expect(waiting).rejects.toThrow('checked out');
    const t0 = performance.now();
    await a!.turn();
    expect(performance.now() - t0).toBeLessThan(1_500);
    expect(a!.waiting).toBe(0);
  }, 10_000);
});
