import { afterEach, describe, expect, inject, it } from 'vitest';
import { freshStorage, killAllServers, startServer, type RunningServer, type TestStorage } from '../support/server.ts';

/**
 * Durable timers survive kill -9 of the real server: a pending `after` fires at its ORIGINAL due
 * time when the server is back before it, and at once when it fell due while the server was
 * down; either way exactly once. Real short delays: a crash and a restart are the point here.
 */

interface ReminderView {
  state: string;
  context: { firedCount: number; armedCount: number };
  timers: { id: string; event: string; dueAt: string }[];
}

interface HistoryItem {
  seq: number | null;
  event: string;
  from: string;
  to: string;
  at: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Arms a reminder and waits for it to be processed; returns the stored due time (epoch ms). */
async function arm(server: RunningServer, key: string, delayMs: number): Promise<number> {
  const res = await server.fetch(`/actors/reminder/${key}/events?wait=true`, { method: 'POST', body: JSON.stringify({ type: 'arm', delayMs }) });
  const body = (await res.json()) as { state: string; snapshot: ReminderView };
  expect(res.status, JSON.stringify(body)).toBe(200);
  expect(body.state).toBe('armed');
  expect(body.snapshot.timers, 'one pending timer after arm').toHaveLength(1);
  const dueAt = Date.parse(body.snapshot.timers[0]!.dueAt);
  // What a restarted server will find: the same due time, committed before the answer.
  const stored = await view(server, key);
  expect(stored.timers.map((t) => Date.parse(t.dueAt)), 'timers stored with the actor').toEqual([dueAt]);
  return dueAt;
}

async function view(server: RunningServer, key: string): Promise<ReminderView> {
  const res = await server.fetch(`/actors/reminder/${key}`);
  expect(res.status).toBe(200);
  return (await res.json()) as ReminderView;
}

async function waitFired(server: RunningServer, key: string, timeoutMs: number): Promise<ReminderView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await view(server, key);
    if (v.state === 'fired') return v;
    if (Date.now() > deadline) throw new Error(`reminder/${key} did not fire within ${timeoutMs} ms (state ${v.state}); output:\n${server.output()}`);
    await sleep(25);
  }
}

/** Transitions into `fired`, with their time (epoch ms). */
async function firings(server: RunningServer, key: string): Promise<number[]> {
  const res = await server.fetch(`/actors/reminder/${key}/history?limit=1000`);
  expect(res.status).toBe(200);
  const { items } = (await res.json()) as { items: HistoryItem[] };
  return items.filter((i) => i.to === 'fired').map((i) => Date.parse(i.at));
}

const storages: TestStorage[] = [];
afterEach(async () => {
  await killAllServers();
  await Promise.all(storages.splice(0).map((s) => s.cleanup()));
});

// A restart takes 1-2 s alone but up to ~4 s beside other test files on two cores, and the
// embedded variant restarts its own postgres too: enough lead that the restart beats the due time.
describe.each([
  { kind: 'external' as const, delayMs: 8000 },
  { kind: 'embedded' as const, delayMs: 10_000 },
])('durable timers across SIGKILL ($kind storage)', ({ kind, delayMs }) => {
  it('fires at the original due time when the server is back before it', async () => {
    const storage = await freshStorage(kind, inject('databaseUrl'));
    storages.push(storage);
    let server = await startServer(storage.storage);
    const dueAt = await arm(server, 'rem-early', delayMs);

    await sleep(1000);
    await server.kill('SIGKILL');
    const killedAt = Date.now();
    server = await startServer(storage.storage);
    // Otherwise this would test the "fell due while down" case below instead.
    expect(server.readyAt, `restart took ${server.readyAt - killedAt} ms; it must be ready well before the due time`).toBeLessThan(dueAt - 300);

    const fired = await waitFired(server, 'rem-early', dueAt - Date.now() + 10_000);
    expect(fired.context.firedCount).toBe(1);
    expect(fired.timers).toEqual([]);
    const at = await firings(server, 'rem-early');
    expect(at, 'exactly one transition to fired').toHaveLength(1);
    const lateness = at[0]! - dueAt;
    // A runtime that restarted the delay from zero would fire about delayMs after the restart.
    expect(lateness, `fired ${lateness} ms after the original due time`).toBeGreaterThanOrEqual(0);
    expect(lateness, `fired ${lateness} ms after the original due time`).toBeLessThanOrEqual(300);

    expect(await server.stop()).toBe(0);
    console.log(`[timer ${kind}] due-before-restart: restartReadyMs=${server.readyAt - killedAt} firedLateByMs=${lateness}`);
  }, 120_000);

  it('fires at once after a restart when it fell due while the server was down', async () => {
    const storage = await freshStorage(kind, inject('databaseUrl'));
    storages.push(storage);
    let server = await startServer(storage.storage);
    const dueAt = await arm(server, 'rem-late', 1500);
    await server.kill('SIGKILL');

    await sleep(Math.max(0, dueAt + 500 - Date.now()));
    server = await startServer(storage.storage);
    expect(server.spawnedAt).toBeGreaterThan(dueAt);

    const fired = await waitFired(server, 'rem-late', 10_000);
    expect(fired.context.firedCount).toBe(1);
    const at = await firings(server, 'rem-late');
    expect(at, 'exactly one transition to fired').toHaveLength(1);
    // At once: during startup or right after it, not a full delay later.
    const sinceReady = at[0]! - server.readyAt;
    expect(at[0]!, 'fired by the restarted server').toBeGreaterThanOrEqual(server.spawnedAt);
    expect(sinceReady, `fired ${sinceReady} ms after the restarted server was ready`).toBeLessThanOrEqual(1000);

    expect(await server.stop()).toBe(0);
    console.log(`[timer ${kind}] due-while-down: overdueAtRestartMs=${server.spawnedAt - dueAt} firedMsAfterReady=${sinceReady}`);
  }, 120_000);
});
