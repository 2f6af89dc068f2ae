import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorSystem } from '../../actors/system.ts';
import { createApp } from '../../http/app.ts';
import { demoActorTypes, tallyType } from '../../http/modules/demo.ts';
import { testDb, type TestDb } from '../support/db.ts';

const ADMIN = 'admin-token-0123456789abcdef';
const DOCTOR = 'doctor-token-0123456789abcdef';

describe('HTTP API', () => {
  let t: TestDb;
  let system: ActorSystem;
  let app: ReturnType<typeof createApp>;
  const logged: string[] = [];

  beforeAll(async () => {
    t = await testDb();
    system = new ActorSystem({ db: t.db, waitTimeoutMs: 5_000 });
    for (const def of demoActorTypes()) system.register(def);
    system.register(tallyType({ name: 'tiny-box', mailboxSize: 1 }));
    await system.start();
    const sink = new Writable({ write: (chunk, _enc, cb) => (logged.push(String(chunk)), cb()) });
    app = createApp({
      system,
      logger: pino({ level: 'info' }, sink),
      tokens: [
        { token: ADMIN, role: 'admin', subject: 'ops' },
        { token: DOCTOR, role: 'doctor', subject: 'dr-1' },
      ],
      ready: async () => void (await t.db.query('SELECT 1')),
      maxBodyBytes: 4096,
    });
  });
  afterAll(async () => {
    await system.stop();
    await t.cleanup();
  });

  const req = (path: string, init: { method?: string; body?: string; token?: string | null; headers?: Record<string, string> } = {}) =>
    app.request(path, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: {
        ...(init.token === null ? {} : { authorization: `Bearer ${init.token ?? ADMIN}` }),
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...init.headers,
      },
      ...(init.body === undefined ? {} : { body: init.body }),
    });
  const post = (path: string, event: unknown, headers: Record<string, string> = {}) => req(path, { body: JSON.stringify(event), headers });
  const journalCount = async () => (await t.db.query('SELECT count(*)::int AS n FROM journal')).rows[0].n as number;

  async function expectProblem(res: Response, status: number, field?: string) {
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    const body: any = await res.json();
    expect(body).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
    if (field) expect(body.field).toBe(field);
    expect(JSON.stringify(body)).not.toMatch(/at .*\.ts:\d+/); // no stack traces
    return body;
  }

  it('serves health and readiness without a token', async () => {
    expect((await req('/healthz', { token: null })).status).toBe(200);
    expect(await (await req('/readyz', { token: null })).json()).toEqual({ status: 'ready' });
  });

  it('requires a known bearer token, and the admin role for actor routes', async () => {
    await expectProblem(await req('/machines', { token: null }), 401, 'Authorization');
    await expectProblem(await req('/machines', { token: 'x'.repeat(30) }), 401, 'Authorization');
    await expectProblem(await post('/actors/tally/A/events', { type: 'close' }, { authorization: `Bearer ${DOCTOR}` }), 403, 'Authorization');
    expect(await journalCount()).toBe(0);
  });

  it('accepts an event with 202 and a seq; ?wait=true answers with the snapshot', async () => {
    const res = await post('/actors/tally/H-1/events', { type: 'add', id: 'a', amount: 2 });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ seq: 1, duplicate: false });
    const waited = await post('/actors/tally/H-1/events?wait=true', { type: 'add', id: 'b', amount: 3 });
    expect(waited.status).toBe(200);
    const body: any = await waited.json();
    expect(body).toMatchObject({ seq: 2, state: 'open', snapshot: { context: { total: 5, applied: ['a', 'b'] } } });
  });

  it('makes an Idempotency-Key resend a no-op returning the first answer', async () => {
    const first = await post('/actors/tally/H-2/events', { type: 'add', id: 'x', amount: 1 }, { 'idempotency-key': 'once' });
    const again = await post('/actors/tally/H-2/events', { type: 'add', id: 'x', amount: 1 }, { 'idempotency-key': 'once' });
    expect(await first.json()).toEqual({ seq: 1, duplicate: false });
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await again.json()).toEqual({ seq: 1, duplicate: true });
  });

  it('answers 409 naming the state when the machine does not accept the event', async () => {
    await post('/actors/tally/H-3/events?wait=true', { type: 'close' });
    const body = await expectProblem(await post('/actors/tally/H-3/events?wait=true', { type: 'close' }), 409, 'type');
    expect(body.state).toBe('closed');
    expect(body.detail).toContain("'closed'");
  });

  it('rejects bad input with the right 4xx and leaves the journal unchanged', async () => {
    const before = await journalCount();
    await expectProblem(await req('/actors/tally/H-4/events', { body: '{"type": "add", ' }), 400, 'body');
    await expectProblem(await post('/actors/nosuch/H-4/events', { type: 'add' }), 404, 'type');
    await expectProblem(await post('/actors/tally/bad%20key!/events', { type: 'close' }), 400, 'key');
    await expectProblem(await post('/actors/tally/H-4/events', { type: 'explode' }), 422, 'type');
    await expectProblem(await post('/actors/tally/H-4/events', { type: 'add', id: 'a', amount: 'lots' }), 422, 'amount');
    await expectProblem(await post('/actors/tally/H-4/events', { noType: true }), 422, 'type');
    await expectProblem(await post('/actors/tally/H-4/events', [1, 2]), 422, 'body');
    await expectProblem(await post('/actors/tally/H-4/events', { type: 'annotate', note: 'n'.repeat(10_000) }), 413, 'body');
    // Text PostgreSQL cannot store would fail the whole batch, other senders' events with it.
    await expectProblem(await post('/actors/tally/H-4/events', { type: 'annotate', note: 'a\u0000b' }), 422, 'note');
    await expectProblem(await post('/actors/tally/H-4/events', { type: 'annotate', note: 'half a pair: \ud83d' }), 422, 'note');
    await expectProblem(await req('/actors/tally/H-4/events', { body: 'type=add', headers: { 'content-type': 'text/plain' } }), 415, 'Content-Type');
    await expectProblem(await post('/actors/tally/H-4/events?wait=maybe', { type: 'close' }), 400, 'wait');
    await expectProblem(await post('/actors/tally/H-4/events', { type: 'close' }, { 'idempotency-key': 'x'.repeat(300) }), 400, 'Idempotency-Key');
    expect(await journalCount()).toBe(before);
    await expectProblem(await req('/actors/tally/H-4'), 404, 'key');
  });

  it('answers 503 with Retry-After when a mailbox is full', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => post('/actors/tiny-box/M-1/events', { type: 'add', id: `m${i}`, amount: 1 })));
    const full = results.filter((r) => r.status === 503);
    expect(full.length).toBeGreaterThan(0);
    expect(Number(full[0]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(results.every((r) => r.status === 202 || r.status === 503)).toBe(true);
  });

  it('reads snapshots with redacted context, pending timers, history and lists', async () => {
    await post('/actors/tally/R-1/events?wait=true', { type: 'annotate', note: 'PATIENT-SECRET-NOTE' });
    const view: any = await (await req('/actors/tally/R-1')).json();
    expect(view).toMatchObject({ type: 'tally', key: 'R-1', state: 'open', status: 'active', processedSeq: 1, context: { note: '[redacted]' } });
    expect(JSON.stringify(view)).not.toContain('PATIENT-SECRET-NOTE');

    const armed: any = await (await post('/actors/reminder/R-2/events?wait=true', { type: 'arm', delayMs: 60_000 })).json();
    expect(armed.snapshot.timers).toEqual([{ id: expect.stringContaining('xstate.after'), event: expect.any(String), dueAt: expect.any(String) }]);
    const stored: any = await (await req('/actors/reminder/R-2')).json();
    expect(stored.timers).toEqual(armed.snapshot.timers);

    const history: any = await (await req('/actors/tally/R-1/history')).json();
    expect(history.items.map((h: { event: string }) => h.event)).toEqual(['xstate.init', 'annotate']);
    expect(history.items[1]).toMatchObject({ seq: 1, from: 'open', to: 'open', accepted: true });

    for (const k of ['L-1', 'L-2', 'L-3']) await post(`/actors/tally/${k}/events?wait=true`, { type: 'close' });
    const page1: any = await (await req('/actors?type=tally&state=closed&limit=2')).json();
    expect(page1.items).toHaveLength(2);
    const page2: any = await (await req(`/actors?type=tally&state=closed&limit=2&cursor=${page1.nextCursor}`)).json();
    const keys = [...page1.items, ...page2.items].map((i: { key: string }) => i.key);
    expect(keys).toEqual(expect.arrayContaining(['L-1', 'L-2', 'L-3']));
    expect(keys.every((k: string) => k !== 'R-1')).toBe(true);
    await expectProblem(await req('/actors'), 400, 'type');
    await expectProblem(await req('/actors?type=tally&cursor=%%%'), 400, 'cursor');
    await expectProblem(await req('/actors?type=nosuch'), 404, 'type');
  });

  it('serves registered machines and their definitions', async () => {
    const list: any = await (await req('/machines')).json();
    expect(list.items.map((m: { type: string }) => m.type)).toEqual(expect.arrayContaining(['tally', 'reminder']));
    const def: any = await (await req('/machines/reminder')).json();
    expect(def.machine.states).toHaveProperty('armed');
    expect(def.events).toEqual(['arm', 'snooze', 'cancel', 'ack']);
    await expectProblem(await req('/machines/nosuch'), 404);
    await expectProblem(await req('/no/such/route'), 404);
  });

  it('exposes Prometheus metrics to an authenticated scraper', async () => {
    await expectProblem(await req('/metrics', { token: null }), 401);
    // A resend in a later batch: its batch is refused on the key (or, within a second of such a
    // refusal, reads its keys first), so key retries are at least one.
    for (let i = 0; i < 2; i++) expect((await post('/actors/tally/M-1/events', { type: 'add', id: 'm', amount: 1 }, { 'idempotency-key': 'once' })).status).toBe(202);
    const text = await (await req('/metrics', { token: DOCTOR })).text();
    const retries = Number(/^actor_group_commit_key_retries_total (\d+)$/m.exec(text)![1]);
    expect(retries).toBeGreaterThanOrEqual(1);
    expect(retries).toBe(system.committer.stats.keyRetries);
    expect(text).toMatch(/^actor_events_appended_total \d+$/m);
    expect(text).toMatch(/^actors_held_off 0$/m);
    expect(Number(/^actor_events_appended_total (\d+)$/m.exec(text)![1])).toBeGreaterThan(0);
    expect(text).toContain('http_request_duration_seconds_bucket{le="0.001",method="POST",route="/actors/:type/:key/events"');
  });

  it('logs every request with a request id and never the sensitive context', async () => {
    const res = await post('/actors/tally/G-1/events?wait=true', { type: 'annotate', note: 'DIAGNOSIS-K74' });
    const id = res.headers.get('x-request-id');
    expect(id).toBeTruthy();
    const all = logged.join('');
    expect(all).toContain(id!);
    expect(all).not.toContain('DIAGNOSIS-K74');
    expect(all).not.toContain('G-1');
  });
});
