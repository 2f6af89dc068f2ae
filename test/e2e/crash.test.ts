import { randomInt } from 'node:crypto';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { withClient } from '../support/pgdb.ts';
import { embeddedUrl, freshStorage, killAllServers, startServer, type RunningServer, type Storage, type TestStorage } from '../support/server.ts';

/**
 * Kill -9 the real server in the middle of a stream of events, restart it on the same storage,
 * resend what was not acknowledged, and check that every event was applied exactly once.
 * Reproduce a failure with CRASH_SEED=<seed from the summary line>.
 */

const ACTORS = 100;
const EVENTS_PER_ACTOR = 24;
const CLIENTS = 20;
const DUPLICATE_SAMPLE = 100;
const SEED = Number(process.env.CRASH_SEED ?? randomInt(2 ** 31));

interface PlannedEvent {
  key: string;
  id: string;
  amount: number;
}

type Outcome = { kind: 'acked'; seq: number | undefined } | { kind: 'unknown'; reason: string } | { kind: 'unsent' };

/** Small seeded PRNG (mulberry32), so the kill point and the order can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(items: T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function send(server: RunningServer, ev: PlannedEvent): Promise<Response> {
  return server.fetch(`/actors/tally/${ev.key}/events`, {
    method: 'POST',
    headers: { 'idempotency-key': ev.id },
    body: JSON.stringify({ type: 'add', id: ev.id, amount: ev.amount }),
    signal: AbortSignal.timeout(15_000),
  });
}

/** Runs `work` over `items` with `n` concurrent workers until done or `stop()` says so. */
async function pool<T>(items: T[], n: number, work: (item: T) => Promise<void>, stop = () => false): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (!stop() && next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: n }, worker));
}

interface ActorView {
  context: { applied: string[]; count: number; total: number };
  processedSeq: number;
  lastSeq: number;
}

async function waitProcessed(server: RunningServer, key: string, deadline: number): Promise<ActorView> {
  for (;;) {
    const res = await server.fetch(`/actors/tally/${key}`);
    expect(res.status, `GET tally/${key}`).toBe(200);
    const view = (await res.json()) as ActorView;
    if (view.processedSeq === view.lastSeq) return view;
    if (Date.now() > deadline) throw new Error(`tally/${key} not processed in time: processedSeq ${view.processedSeq}, lastSeq ${view.lastSeq}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const storages: TestStorage[] = [];
afterEach(async () => {
  await killAllServers();
  await Promise.all(storages.splice(0).map((s) => s.cleanup()));
});

describe.each(['external', 'embedded'] as const)('SIGKILL during a stream of events (%s storage)', (kind) => {
  it('applies every event exactly once after a restart and resend', async () => {
    const t0 = Date.now();
    const rand = prng(SEED + (kind === 'embedded' ? 1 : 0));
    const storage = await freshStorage(kind, inject('databaseUrl'));
    storages.push(storage);

    const planned: PlannedEvent[] = [];
    for (let a = 0; a < ACTORS; a++) {
      for (let n = 0; n < EVENTS_PER_ACTOR; n++) planned.push({ key: `crash-${a}`, id: `ev-${a}-${n}`, amount: n + 1 });
    }
    const order = shuffle(planned, rand);
    const killAfter = 300 + Math.floor(rand() * 1201);
    const outcomes = new Map<string, Outcome>(planned.map((e) => [e.id, { kind: 'unsent' }]));
    const unexpected: string[] = [];

    // Phase 1: stream events, SIGKILL once `killAfter` of them are acknowledged.
    let server = await startServer(storage.storage);
    const firstOutput = server.output;
    let acked = 0;
    let killing: Promise<void> | undefined;
    const target = server;
    await pool(
      order,
      CLIENTS,
      async (ev) => {
        try {
          const res = await send(target, ev);
          if (res.status !== 202) {
            outcomes.set(ev.id, { kind: 'unknown', reason: `HTTP ${res.status}` });
            unexpected.push(`${ev.id}: HTTP ${res.status} ${await res.text().catch(() => '')}`);
            return;
          }
          const body = (await res.json().catch(() => undefined)) as { seq?: number } | undefined;
          outcomes.set(ev.id, { kind: 'acked', seq: body?.seq });
          if (++acked === killAfter) killing = target.kill('SIGKILL');
        } catch (err) {
          outcomes.set(ev.id, { kind: 'unknown', reason: (err as Error).message });
        }
      },
      () => killing !== undefined,
    );
    await killing;
    const killedAt = Date.now();
    expect(unexpected, `non-202 answers before the kill\n${firstOutput()}`).toEqual([]);
    const count = (k: Outcome['kind']) => [...outcomes.values()].filter((o) => o.kind === k).length;
    const ackedBeforeKill = count('acked');

    // Phase 2: restart on the same storage; resend everything not acknowledged, plus a sample
    // of acknowledged events, which must come back as duplicates with their first seq.
    server = await startServer(storage.storage);
    const restartMs = server.readyAt - killedAt;
    const notAcked = planned.filter((e) => outcomes.get(e.id)!.kind !== 'acked');
    const sample = shuffle(
      planned.filter((e) => outcomes.get(e.id)!.kind === 'acked'),
      rand,
    ).slice(0, DUPLICATE_SAMPLE);
    const resendOrder = shuffle([...notAcked, ...sample], rand);
    const answers = new Map<string, { seq: number; duplicate: boolean }>();
    const resendFailures: string[] = [];
    const restarted = server;
    await pool(resendOrder, CLIENTS, async (ev) => {
      const res = await send(restarted, ev);
      const body = (await res.json()) as { seq: number; duplicate: boolean };
      if (res.status !== 202) resendFailures.push(`${ev.id}: HTTP ${res.status} ${JSON.stringify(body)}`);
      else answers.set(ev.id, body);
    });
    expect(resendFailures, `resends refused\n${server.output()}`).toEqual([]);

    let duplicatesConfirmed = 0;
    let unknownButStored = 0;
    for (const ev of sample) {
      const first = outcomes.get(ev.id) as Extract<Outcome, { kind: 'acked' }>;
      expect(answers.get(ev.id), `resend of acknowledged ${ev.id}`).toEqual({ seq: first.seq, duplicate: true });
      duplicatesConfirmed++;
    }
    for (const ev of notAcked) {
      const o = outcomes.get(ev.id)!;
      if (o.kind === 'unsent') expect(answers.get(ev.id)?.duplicate, `never-sent ${ev.id} reported as duplicate`).toBe(false);
      if (o.kind === 'unknown' && answers.get(ev.id)?.duplicate) unknownButStored++;
    }

    // Phase 3: every actor catches up; each event is in exactly one ledger, exactly once.
    const deadline = Date.now() + 60_000;
    const views = new Map<string, ActorView>();
    const keys = Array.from({ length: ACTORS }, (_, a) => `crash-${a}`);
    await pool(keys, CLIENTS, async (key) => void views.set(key, await waitProcessed(restarted, key, deadline)));

    const seen = new Map<string, string[]>();
    for (const [key, view] of views) {
      for (const id of view.context.applied) seen.set(id, [...(seen.get(id) ?? []), key]);
      const mine = planned.filter((e) => e.key === key);
      expect(view.context.count, `count of ${key}`).toBe(view.context.applied.length);
      expect(view.context.total, `total of ${key}`).toBe(mine.reduce((s, e) => s + e.amount, 0));
      expect([...view.context.applied].sort(), `ledger of ${key}`).toEqual(mine.map((e) => e.id).sort());
    }
    const wrong = planned.filter((e) => seen.get(e.id)?.length !== 1 || seen.get(e.id)![0] !== e.key);
    expect(wrong.map((e) => `${e.id}: ${JSON.stringify(seen.get(e.id) ?? [])}`)).toEqual([]);

    // The journal and the inspection log, straight from the database: one journal row and one
    // applied transition per event, none twice; seqs are dense, so lastSeq is the event count.
    const perActor = await withClient(storageUrl(storage.storage), async (c) => {
      const { rows } = await c.query<{ key: string; rows: number; ids: number; seqs: number; max_seq: number; adds: number; add_seqs: number }>(
        `SELECT j.key, j.rows, j.ids, j.seqs, j.max_seq, t.adds, t.add_seqs
           FROM (SELECT key, count(*)::int AS rows, count(DISTINCT idempotency_key)::int AS ids, count(DISTINCT seq)::int AS seqs, max(seq)::int AS max_seq
                   FROM journal WHERE type = 'tally' GROUP BY key) j
           LEFT JOIN (SELECT key, count(*)::int AS adds, count(DISTINCT seq)::int AS add_seqs
                   FROM transitions WHERE type = 'tally' AND event_type = 'add' AND accepted GROUP BY key) t USING (key)`,
      );
      return new Map(rows.map((r) => [r.key, r]));
    });
    expect(perActor.size).toBe(ACTORS);
    for (const [key, view] of views) {
      const n = EVENTS_PER_ACTOR;
      const { max_seq, ...counts } = perActor.get(key)!;
      expect(counts, `journal and transitions of ${key}`).toEqual({ key, rows: n, ids: n, seqs: n, adds: n, add_seqs: n });
      expect(view.lastSeq, `lastSeq of ${key}`).toBe(max_seq);
      expect(max_seq, `seqs of ${key} are dense`).toBe(n);
    }

    expect(await server.stop()).toBe(0);
    console.log(
      `[crash ${kind}] seed=${SEED} killAfter=${killAfter} ackedBeforeKill=${ackedBeforeKill} unknown=${count('unknown')} ` +
        `(stored anyway: ${unknownButStored}) unsent=${count('unsent')} resent=${notAcked.length} duplicatesConfirmed=${duplicatesConfirmed} ` +
        `restartReadyMs=${restartMs} totalMs=${Date.now() - t0}`,
    );
  }, 180_000);
});

function storageUrl(storage: Storage): string {
  return storage.kind === 'external' ? storage.databaseUrl : embeddedUrl(storage.dataDir);
}
