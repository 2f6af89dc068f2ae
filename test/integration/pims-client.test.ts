import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createPimsClient, type PimsClient } from '../../integrations/pims/client.ts';
import {
  PimsError,
  PimsNotFoundError,
  PimsProtocolError,
  PimsRateLimitedError,
  PimsUnavailableError,
  parseRetryAfter,
} from '../../integrations/pims/errors.ts';
import type { LineItem } from '../../integrations/pims/schemas.ts';
import { PimsSimulatorStats, startPimsSimulator, type PimsCall, type PimsSimulator, type PimsSimulatorOptions } from '../../integrations/pims/simulator.ts';

const T0 = Date.parse('2025-03-01T09:00:00.000Z');

const sims: PimsSimulator[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

async function simulator(options: PimsSimulatorOptions = {}, clientId = 'test'): Promise<{ sim: PimsSimulator; client: PimsClient }> {
  const sim = await startPimsSimulator({ visitCount: 10, ...options });
  sims.push(sim);
  return { sim, client: createPimsClient({ baseUrl: sim.url, timeoutMs: 5_000, clientId }) };
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail('expected the request to fail'),
    (err: unknown) => err,
  );
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const latest = (items: LineItem[]) => items.map((i) => i.updatedAt).sort().at(-1);

describe('pims client against a shared, well-behaved simulator', () => {
  let sim: PimsSimulator;
  let client: PimsClient;
  beforeAll(async () => {
    sim = await startPimsSimulator({ visitCount: 12, itemsPerVisit: 4, seed: 7, now: () => T0 });
    client = createPimsClient({ baseUrl: `${sim.url}/`, clientId: 'shared' });
  });
  afterAll(() => sim.close());

  it('lists the open visits, checked in a minute apart up to now()', async () => {
    const visits = await client.openVisits();
    expect(visits.map((v) => v.id)).toEqual(Array.from({ length: 12 }, (_, i) => `V-${String(i + 1).padStart(6, '0')}`));
    for (const v of visits) expect(v.patientId).toMatch(/^P-\d{6}$/);
    expect(visits.at(-1)?.checkedInAt).toBe(new Date(T0).toISOString());
    expect(visits[0]?.checkedInAt).toBe(new Date(T0 - 11 * 60_000).toISOString());
    expect(visits).toEqual(sim.openVisits());
  });

  it('parses line items whose totals are quantity × unitPrice in cents', async () => {
    const items = await client.lineItems('V-000003');
    expect(items).toHaveLength(4);
    expect(items).toEqual(sim.lineItems('V-000003'));
    for (const item of items) {
      expect(item.id).toMatch(/^V-000003-L\d$/);
      expect(item.productName).not.toBe('');
      expect(item.quantity).toBeGreaterThan(0);
      expect(item.total).toBe(Math.round(item.quantity * item.unitPrice * 100) / 100);
      expect(item.updatedAt).toBe(new Date(T0 - 9 * 60_000).toISOString());
    }
  });

  it('sends X-Client-Id and records each call with the visit it named', async () => {
    sim.resetStats();
    await client.lineItems('V-000001');
    await client.lineItems('V-000001');
    await client.lineItems('V-000002');
    await client.openVisits();
    await fetch(`${sim.url}/visits/V-000001/line-items`).then((r) => r.text());
    expect(sim.stats.calls).toHaveLength(5);
    expect(sim.stats.calls[0]).toMatchObject({ at: T0, client: 'shared', path: '/visits/V-000001/line-items', visitId: 'V-000001', status: 200 });
    expect(sim.stats.calls[3]).toEqual({ at: T0, wallAt: expect.any(Number), client: 'shared', path: '/visits', status: 200 });
    expect(sim.stats.calls[4]?.client).toBe('anonymous');
    expect(sim.stats.byVisit('V-000001')).toBe(3);
    expect(sim.stats.byVisit('V-000002')).toBe(1);
    expect(sim.stats.byVisit('V-000003')).toBe(0);
    expect(sim.stats.maxPerWindow(60_000)).toBe(5);
    expect(sim.stats.maxPerWindow(60_000, 'shared')).toBe(4);
    expect(sim.stats.maxPerWindow(60_000, 'nobody')).toBe(0);
  });

  it('turns 404 into a PimsNotFoundError that is not retryable and quotes no body', async () => {
    const err = await failure(client.lineItems('V-999999'));
    expect(err).toBeInstanceOf(PimsNotFoundError);
    expect((err as PimsError).retryable).toBe(false);
    expect((err as PimsError).status).toBe(404);
    expect((err as PimsError).message).toBe('GET /visits/V-999999/line-items failed: 404');
  });

  it('URL-encodes visit ids', async () => {
    const odd = sim.openVisit({ id: 'V 7/ä?x' });
    expect(await client.lineItems(odd.id)).toHaveLength(4);
    expect(sim.stats.calls.at(-1)).toMatchObject({ path: '/visits/V%207%2F%C3%A4%3Fx/line-items', visitId: 'V 7/ä?x', status: 200 });
    sim.removeVisit(odd.id);
  });

  it('gives the same data for the same seed and clock, and different data for another seed', async () => {
    const twin = await simulator({ visitCount: 12, itemsPerVisit: 4, seed: 7, now: () => T0 });
    const other = await simulator({ visitCount: 12, itemsPerVisit: 4, seed: 8, now: () => T0 });
    expect(await twin.client.openVisits()).toEqual(await client.openVisits());
    expect(await twin.client.lineItems('V-000005')).toEqual(await client.lineItems('V-000005'));
    expect(await other.client.lineItems('V-000005')).not.toEqual(await client.lineItems('V-000005'));
  });
});

describe('pims client when the system misbehaves', () => {
  it('turns failureRate 1 into PimsUnavailableError with status 503', async () => {
    const { sim, client } = await simulator({ failureRate: 1 });
    for (const call of [() => client.openVisits(), () => client.lineItems('V-000001')]) {
      const err = await failure(call());
      expect(err).toBeInstanceOf(PimsUnavailableError);
      expect((err as PimsUnavailableError).status).toBe(503);
      expect((err as PimsUnavailableError).retryable).toBe(true);
    }
    sim.configure({ failureRate: 0 });
    expect(await client.openVisits()).toHaveLength(10);
    expect(sim.stats.calls.map((c) => c.status)).toEqual([503, 503, 200]);
  });

  it('fails about the configured share of requests', async () => {
    const { sim, client } = await simulator({ failureRate: 0.5, seed: 3 });
    const results = await Promise.allSettled(Array.from({ length: 200 }, () => client.lineItems('V-000001')));
    const failed = results.filter((r) => r.status === 'rejected');
    expect(failed.length).toBeGreaterThan(60);
    expect(failed.length).toBeLessThan(140);
    expect(failed.every((r) => r.reason instanceof PimsUnavailableError)).toBe(true);
    expect(sim.stats.calls.filter((c) => c.status === 503)).toHaveLength(failed.length);
  });

  it('answers 429 with Retry-After to a client over its rate, and only to that client', async () => {
    const { sim, client } = await simulator({ rateLimitPerSec: 2 }, 'greedy');
    // A burst of 2 is allowed; the third request comes well before the next token (500 ms).
    await client.lineItems('V-000001');
    await client.lineItems('V-000002');
    const err = await failure(client.lineItems('V-000003'));
    expect(err).toBeInstanceOf(PimsRateLimitedError);
    expect((err as PimsRateLimitedError).retryAfterMs).toBe(1000);
    expect((err as PimsRateLimitedError).retryable).toBe(true);
    expect((err as PimsRateLimitedError).status).toBe(429);
    expect(sim.stats.calls.map((c) => [c.client, c.status])).toEqual([
      ['greedy', 200],
      ['greedy', 200],
      ['greedy', 429],
    ]);

    const polite = createPimsClient({ baseUrl: sim.url, clientId: 'polite' });
    expect(await polite.lineItems('V-000003')).toHaveLength(5);
    expect(sim.stats.calls.at(-1)).toMatchObject({ client: 'polite', status: 200 });
  });

  it('lets a rate-limited client through again once it has waited Retry-After', async () => {
    const { client } = await simulator({ rateLimitPerSec: 5 }, 'patient');
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => client.openVisits()));
    const limited = results.filter((r) => r.status === 'rejected');
    expect(limited.length).toBeGreaterThanOrEqual(2);
    expect(limited.every((r) => r.reason instanceof PimsRateLimitedError)).toBe(true);
    const wait = (limited[0] as PromiseRejectedResult).reason.retryAfterMs as number;
    await new Promise((resolve) => setTimeout(resolve, wait));
    expect(await client.openVisits()).toHaveLength(10);
  });

  it('turns an outage (down) into PimsUnavailableError, and recovers when it ends', async () => {
    const { sim, client } = await simulator();
    sim.configure({ down: true });
    const err = await failure(client.lineItems('V-000001'));
    expect(err).toBeInstanceOf(PimsUnavailableError);
    expect((err as PimsUnavailableError).status).toBe(503);
    expect(await failure(client.openVisits())).toBeInstanceOf(PimsUnavailableError);
    sim.settings.down = false;
    expect(await client.openVisits()).toHaveLength(10);
  });

  it('gives up on a slow answer after about timeoutMs with PimsUnavailableError', async () => {
    const { sim } = await simulator({ latencyMs: 3_000 });
    const client = createPimsClient({ baseUrl: sim.url, timeoutMs: 150 });
    const t0 = performance.now();
    const err = await failure(client.lineItems('V-000001'));
    const elapsed = performance.now() - t0;
    expect(err).toBeInstanceOf(PimsUnavailableError);
    expect((err as PimsUnavailableError).status).toBeUndefined();
    expect((err as PimsUnavailableError).message).toContain('timed out after 150 ms');
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(1_500);
    expect(sim.stats.calls).toHaveLength(1);
  });

  it("rethrows the caller's own abort reason, not a PimsError", async () => {
    const { sim } = await simulator({ latencyMs: 3_000 });
    const client = createPimsClient({ baseUrl: sim.url, timeoutMs: 5_000 });
    const lease = new AbortController();
    const reason = new Error('lease lost');
    const pending = failure(client.openVisits(lease.signal));
    await vi.waitFor(() => expect(sim.stats.calls).toHaveLength(1));
    lease.abort(reason);
    expect(await pending).toBe(reason);
  });

  it('turns a refused connection into PimsUnavailableError', async () => {
    const { sim, client } = await simulator();
    await sim.close();
    const err = await failure(client.openVisits());
    expect(err).toBeInstanceOf(PimsUnavailableError);
    expect((err as PimsUnavailableError).status).toBeUndefined();
    expect((err as PimsUnavailableError).message).toContain('ECONNREFUSED');
  });

  it('turns a 200 outside the contract into PimsProtocolError without quoting the body', async () => {
    const answering = (body: string) =>
      createPimsClient({ baseUrl: 'http://pims.invalid', fetch: async () => new Response(body, { status: 200 }) });
    const bad = answering(JSON.stringify({ visits: [{ id: 'V-1', patientId: 'P-Jane Doe', checkedInAt: 'yesterday' }] }));
    const err = await failure(bad.openVisits());
    expect(err).toBeInstanceOf(PimsProtocolError);
    expect((err as PimsProtocolError).retryable).toBe(false);
    expect((err as PimsProtocolError).issues).toEqual(['visits.0.checkedInAt: invalid_format']);
    expect((err as PimsProtocolError).message).not.toMatch(/Jane|yesterday/);

    expect(await failure(answering('<html>Jane Doe</html>').lineItems('V-1'))).toMatchObject({ name: 'PimsProtocolError', issues: ['body is not JSON'] });
    const stringQuantity = JSON.stringify({ items: [{ id: 'L1', productName: 'x', quantity: '2', unitPrice: 1, total: 2, updatedAt: new Date(T0).toISOString() }] });
    expect(await failure(answering(stringQuantity).lineItems('V-1'))).toMatchObject({ issues: ['items.0.quantity: invalid_type'] });
  });

  it('keeps the listed fields and drops fields the system adds', async () => {
    const body = { items: [{ id: 'L1', productName: 'x', quantity: 2, unitPrice: 1.5, total: 3, updatedAt: '2025-03-01T10:00:00+01:00', owner: 'Jane Doe' }] };
    const client = createPimsClient({ baseUrl: 'http://pims.invalid', fetch: async () => new Response(JSON.stringify(body), { status: 200 }) });
    expect(await client.lineItems('V-1')).toEqual([{ id: 'L1', productName: 'x', quantity: 2, unitPrice: 1.5, total: 3, updatedAt: '2025-03-01T10:00:00+01:00' }]);
  });

  it('closes promptly with a request held by latency and idle keep-alive connections', async () => {
    const sim = await startPimsSimulator({ visitCount: 1, latencyMs: 30_000 });
    const client = createPimsClient({ baseUrl: sim.url, timeoutMs: 20_000 });
    const held = failure(client.openVisits());
    await vi.waitFor(() => expect(sim.stats.calls).toHaveLength(1));
    const t0 = performance.now();
    await sim.close();
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(await held).toBeInstanceOf(PimsUnavailableError);
  });
});

describe('pims simulator control', () => {
  it('closeVisit takes a visit off the open list but its items still answer', async () => {
    const { sim, client } = await simulator();
    expect(sim.closeVisit('V-000004')).toBe(true);
    expect(sim.closeVisit('V-000004')).toBe(false);
    const ids = (await client.openVisits()).map((v) => v.id);
    expect(ids).toHaveLength(9);
    expect(ids).not.toContain('V-000004');
    expect(await client.lineItems('V-000004')).toHaveLength(5);

    expect(sim.removeVisit('V-000004')).toBe(true);
    expect(await failure(client.lineItems('V-000004'))).toBeInstanceOf(PimsNotFoundError);
  });

  it('openVisit adds an open visit with items, checked in now()', async () => {
    let t = T0;
    const { sim, client } = await simulator({ now: () => t, itemsPerVisit: 2 });
    t += 5_000;
    const visit = sim.openVisit();
    expect(visit).toEqual({ id: 'V-000011', patientId: expect.stringMatching(/^P-\d{6}$/), checkedInAt: new Date(T0 + 5_000).toISOString() });
    expect((await client.openVisits()).at(-1)).toEqual(visit);
    expect((await client.lineItems(visit.id)).map((i) => i.updatedAt)).toEqual([visit.checkedInAt, visit.checkedInAt]);
    expect(() => sim.openVisit({ id: 'V-000001' })).toThrow(RangeError);
  });

  it('changeItems changes the items and moves updatedAt forward', async () => {
    let t = T0;
    const { sim, client } = await simulator({ now: () => t });
    const before = await client.lineItems('V-000002');
    const untouched = await client.lineItems('V-000003');
    t += 60_000;
    sim.changeItems('V-000002');
    const after = await client.lineItems('V-000002');
    expect(after).not.toEqual(before);
    expect(latest(after)).toBe(new Date(T0 + 60_000).toISOString());
    expect(latest(before)! < latest(after)!).toBe(true);
    for (const item of after) expect(item.total).toBe(Math.round(item.quantity * item.unitPrice * 100) / 100);
    // Same clock reading: still a later updatedAt, so a refresh always sees the change.
    sim.changeItems('V-000002');
    expect(latest((await client.lineItems('V-000002')))! > latest(after)!).toBe(true);
    expect(await client.lineItems('V-000003')).toEqual(untouched);
    expect(() => sim.changeItems('V-999999')).toThrow(RangeError);
  });

  it('churn opens, closes and changes visits until stopped', async () => {
    const { sim, client } = await simulator({ seed: 5 });
    const initial = new Set(sim.openVisits().map((v) => v.id));
    const stop = sim.churn({ intervalMs: 10, open: 2, close: 1, change: 1 });
    await vi.waitFor(
      async () => {
        const ids = (await client.openVisits()).map((v) => v.id);
        expect(ids.filter((id) => !initial.has(id)).length).toBeGreaterThanOrEqual(6);
        expect([...initial].filter((id) => !ids.includes(id)).length).toBeGreaterThanOrEqual(2);
      },
      { timeout: 5_000, interval: 20 },
    );
    stop();
    const frozen = sim.openVisits();
    // Two opened and one closed per round: the open list grows by one a round.
    expect(frozen.length).toBeGreaterThan(10);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sim.openVisits()).toEqual(frozen);
  });

  it('rejects invalid settings', async () => {
    const { sim } = await simulator();
    expect(() => sim.configure({ failureRate: 2 })).toThrow(/failureRate/);
    expect(() => sim.configure({ rateLimitPerSec: 0 })).toThrow(/rateLimitPerSec/);
    expect(sim.settings.failureRate).toBe(0);
    await expect(startPimsSimulator({ latencyMs: -1 })).rejects.toThrow(/latencyMs/);
  });
});

describe('PimsSimulatorStats.maxPerWindow', () => {
  const call = (wallAt: number, client = 'a'): PimsCall => ({ at: 0, wallAt, client, path: '/visits', status: 200 });

  it('slides a window over the sorted arrivals', () => {
    const stats = new PimsSimulatorStats();
    // Out of order on purpose: requests are recorded at arrival but may be pushed in any order.
    for (const t of [500, 0, 100, 950, 999, 1000, 1001, 2500]) stats.record(call(t));
    stats.record(call(990, 'b'));
    expect(stats.maxPerWindow(1000, 'a')).toBe(6); // 100 … 1001: [100, 1100)
    expect(stats.maxPerWindow(1000)).toBe(7); // and b's 990
    // 100 … 1001 spans 901 ms: a window of 901 ms is half-open and misses one end.
    expect(stats.maxPerWindow(901, 'a')).toBe(5);
    expect(stats.maxPerWindow(902, 'a')).toBe(6);
    expect(stats.maxPerWindow(2)).toBe(2); // 999 and 1000; 1001 falls out of [999, 1001)
    expect(stats.maxPerWindow(1, 'a')).toBe(1);
    expect(stats.maxPerWindow(10_000)).toBe(9);
    stats.reset();
    expect(stats.maxPerWindow(1000)).toBe(0);
  });
});

describe('parseRetryAfter', () => {
  it('reads delta-seconds and HTTP-dates, and defaults to 1000 ms', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('1', now)).toBe(1000);
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(null, now)).toBe(1000);
    expect(parseRetryAfter('', now)).toBe(1000);
    expect(parseRetryAfter('soon', now)).toBe(1000);
    expect(parseRetryAfter('-1', now)).toBe(1000);
  });
});
