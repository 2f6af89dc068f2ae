/**
 * Durable timers on the real clock: many `reminder` actors armed in-process, their due times
 * spread over a window that opens after arming, then lateness = when the `fired` transition was
 * recorded (transitions.at) − the due time the runtime stored (timers.due_at). Two modes, each
 * in its own process: resident (actors stay in memory, XState's own timeouts fire) and
 * passivated (actors are evicted before they fall due and the runtime's timer wheel wakes them).
 *
 *   npx tsx bench/timers.ts --db=external|embedded [--count=100000] [--window-ms=60000]
 *                           [--mode=resident|passivated] [--passivate=restart|idle] [--idle-ms=2000]
 *                           [--concurrency=200]
 */
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { ActorSystem } from '../actors/system.ts';
import { reminderType } from '../http/modules/demo.ts';
import type { Db } from '../storage/db.ts';
import { dbKind, intArg, parseArgs } from './lib/args.ts';
import { runBench } from './lib/child.ts';
import { benchDb } from './lib/db.ts';
import { watchGc } from './lib/gc.ts';
import { instrumentDb } from './lib/instrumented-db.ts';
import { benchJson, log, rssSampler, sleep } from './lib/report.ts';
import { percentile, round, summarize } from './lib/stats.ts';

const args = parseArgs();
const kind = dbKind(args);
const count = intArg(args, 'count', 100_000);
const windowMs = intArg(args, 'window-ms', 60_000);
const idleMs = intArg(args, 'idle-ms', 2000);
const concurrency = intArg(args, 'concurrency', 200);
const poolSize = intArg(args, 'pool', 10);
/**
 * How passivated actors leave memory: `restart` (default) arms them on a system that is then
 * stopped, and a new one (idle timeout `--idle-ms`) must wake each from storage; `idle` keeps
 * one system with the short idle timeout, so arming itself must reload evicted actors, which
 * is as slow as creating them (fine for --count=10000, too slow to place 100,000 in a window).
 */
const passivate = args.get('passivate') ?? 'restart';
if (passivate !== 'restart' && passivate !== 'idle') throw new Error(`--passivate must be restart or idle (got '${passivate}')`);
const DAY_MS = 24 * 3_600_000;
const TARGET_P99_MS = 100;

type Mode = 'resident' | 'passivated';

async function main(): Promise<void> {
  const mode = args.get('mode');
  if (mode === 'resident' || mode === 'passivated') return benchJson(await runMode(mode));
  if (mode !== undefined) throw new Error(`--mode must be resident or passivated (got '${mode}')`);
  // Each mode in a fresh process, so the second one's RSS does not carry the first one's heap.
  const self = fileURLToPath(import.meta.url);
  const common = [`--db=${kind}`, `--count=${count}`, `--window-ms=${windowMs}`, `--idle-ms=${idleMs}`, `--concurrency=${concurrency}`, `--pool=${poolSize}`, `--passivate=${passivate}`];
  const nodeArgs = ['--max-old-space-size=8192', '--expose-gc'];
  const resident = await runBench(self, ['--mode=resident', ...common], { nodeArgs });
  const passivated = await runBench(self, ['--mode=passivated', ...common], { nodeArgs });
  benchJson({ bench: 'timers', db: kind, count, windowMs, resident, passivated, targetP99Ms: TARGET_P99_MS });
}

async function runMode(mode: Mode) {
  const store = await benchDb({ kind, label: `timers_${mode}`, poolSize });
  const { db, counters } = instrumentDb(store.db);
  const evictByIdle = mode === 'passivated' && passivate === 'idle';
  const makeSystem = async (idleTimeoutMs: number) => {
    const s = new ActorSystem({ db });
    s.register(reminderType({ idleTimeoutMs }));
    await s.start();
    return s;
  };
  let system = await makeSystem(evictByIdle ? idleMs : DAY_MS);
  const rss = rssSampler(200);
  try {
    log(`timers bench (${mode}${mode === 'passivated' ? `, evicted by ${passivate}` : ''}) on ${kind} Postgres: ${count} reminders over a ${windowMs} ms window`);
    const arming = await armAll(system, evictByIdle);
    log(`  armed ${count} in ${arming.ms} ms (${arming.perSec}/s); ${arming.clamped} had their due time before arming ended`);
    const armedRss = Math.round(process.memoryUsage().rss / 2 ** 20);
    if (mode === 'passivated' && !evictByIdle) {
      // Nothing in memory any more: the next system's timer wheel must wake every actor.
      await system.stop();
      // A restarted process starts with an empty heap: collect the stopped system's now, or
      // its 1.5 GB would still be there, uncollected, while the next one wakes the actors.
      (globalThis as { gc?: () => void }).gc?.();
      system = await makeSystem(idleMs);
    }

    const due = await storedDueTimes(store.db);
    let firstDue = due.size ? Infinity : Date.now();
    let lastDue = due.size ? -Infinity : Date.now();
    for (const d of due.values()) {
      firstDue = Math.min(firstDue, d);
      lastDue = Math.max(lastDue, d);
    }
    if (firstDue < Date.now()) log(`  WARNING: arming outran the projection; ${arming.clamped} timers fell due while arming`);
    await sleepUntil(firstDue - 200);
    const residentAtWindow = system.residentCount.activations;
    const stats0 = { ...system.stats };
    // Diagnostics for lateness: event-loop delay and pool query latency (the wake path's loads).
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const gc = watchGc();
    counters.record = true;
    log(`  window ${new Date(firstDue).toISOString()} .. +${lastDue - firstDue} ms; ${due.size} timers stored; ${residentAtWindow} actors resident as it opens`);

    let fired = 0;
    while (Date.now() < lastDue + 30_000) {
      fired = await firedCount(store.db);
      if (fired >= count) break;
      await sleep(1000);
    }
    loop.disable();
    const gcPauses = gc.stop();
    counters.record = false;
    const wokenByWheel = system.stats.activations - stats0.activations;
    const queries = summarize(counters.queryMs);
    const loopDelay = { p50: round(loop.percentile(50) / 1e6), p99: round(loop.percentile(99) / 1e6), max: round(loop.max / 1e6) };
    const late = await lateness(store.db, due, arming.dueByKey);
    const peakRssMb = rss.stop();
    const result = {
      mode,
      ...(mode === 'passivated' ? { evictedBy: passivate } : {}),
      count,
      fired: late.n,
      missing: count - late.n,
      createPerSec: arming.createPerSec,
      createMs: arming.createMs,
      armPerSec: arming.perSec,
      armMs: arming.ms,
      dueBeforeArmingEnded: arming.clamped,
      windowMs: lastDue - firstDue,
      peakFiresPerSec: late.peakPerSec,
      latenessMs: { p50: late.p50, p99: late.p99, max: late.max, min: late.min },
      residentAtWindow,
      wokenByTimerWheel: wokenByWheel,
      eventLoopDelayMs: loopDelay,
      gcPauseMs: gcPauses,
      poolQueryMs: { n: queries.n, p50: queries.p50, p99: queries.p99, max: queries.max },
      rssAfterArmingMb: armedRss,
      peakRssMb,
      meetsTarget: late.n === count && late.p99 < TARGET_P99_MS,
    };
    log(
      `  ${mode}: ${late.n}/${count} fired; lateness p50 ${late.p50} ms, p99 ${late.p99} ms, max ${late.max} ms (min ${late.min}); ` +
        `peak ${late.peakPerSec} fires/s; ${wokenByWheel} actors woken by the timer wheel; peak RSS ${peakRssMb} MiB`,
    );
    log(
      `  during the window: event-loop delay p99 ${loopDelay.p99} ms (max ${loopDelay.max}); ${queries.n} pool queries outside the group commit, ` +
        `p50 ${queries.p50} ms, p99 ${queries.p99} ms, max ${queries.max} ms; GC pauses: ${gcPauses.major.n} full (longest ${gcPauses.major.maxMs} ms, ` +
        `${gcPauses.major.totalMs} ms in all), ${gcPauses.minor.n} young (longest ${gcPauses.minor.maxMs} ms, ${gcPauses.minor.totalMs} ms in all)`,
    );
    return result;
  } finally {
    rss.stop();
    await system.stop();
    await store.cleanup();
  }
}

/** Runs `fn` for 0..n-1 with `concurrency` in flight; resolves with the rate per second. */
async function forEach(n: number, order: number[] | undefined, fn: (i: number, done: number) => Promise<unknown>): Promise<{ ms: number; perSec: number }> {
  const t0 = Date.now();
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = order ? order[next++]! : next++;
        await fn(i, done);
        done++;
      }
    }),
  );
  const ms = Date.now() - t0;
  return { ms, perSec: Math.round(n / (ms / 1000)) };
}

/**
 * Every actor first gets one event (`ack`, refused in `idle`), so creating 100,000 actors is
 * measured on its own and arming runs on existing actors. Then every reminder is armed, in
 * random order of due time. The window starts when creating them took, after arming starts (x1.5
 * when arming must reload evicted actors), plus the idle timeout when actors are evicted by
 * idleness, so arming has ended and every one is out of memory before its timer falls due.
 */
async function armAll(system: ActorSystem, evictByIdle: boolean) {
  const created = await forEach(count, undefined, (i) => system.send('reminder', `r${i}`, { type: 'ack' }));
  await system.settled();
  log(`  created ${count} actors (one refused 'ack' each) in ${created.ms} ms: ${created.perSec}/s`);

  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const margin = evictByIdle ? idleMs + 3000 : 3000;
  const t0 = Date.now();
  // Fixed before arming starts, so the window is exactly `windowMs` wide. Arming resident
  // actors is several times faster than creating them, so creation's duration is a safe bound;
  // actors evicted by idleness must be loaded again, about as slow as creating them (x1.5).
  const windowStart = t0 + created.ms * (evictByIdle ? 1.5 : 1) + margin;
  const dueByKey = new Map<string, number>();
  const armed = await forEach(count, order, async (i) => {
    const key = `r${i}`;
    const delayMs = Math.max(0, Math.round(windowStart + (i / count) * windowMs - Date.now()));
    dueByKey.set(key, Date.now() + delayMs); // approximate; the stored due_at is used when present
    await system.send('reminder', key, { type: 'arm', delayMs });
  });
  await system.settled();
  const end = Date.now();
  let clamped = 0;
  for (const dueAt of dueByKey.values()) if (dueAt < end) clamped++;
  return { createPerSec: created.perSec, createMs: created.ms, ms: end - t0, perSec: armed.perSec, clamped, dueByKey };
}

/** Due times as the runtime stored them, read before any has fired. */
async function storedDueTimes(db: Db): Promise<Map<string, number>> {
  const { rows } = await db.query<{ key: string; due_at: number }>(`SELECT key, min(due_at) AS due_at FROM timers WHERE type = 'reminder' GROUP BY key`);
  return new Map(rows.map((r) => [r.key, r.due_at]));
}

async function firedCount(db: Db): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(DISTINCT key)::int AS n FROM transitions WHERE type = 'reminder' AND event_type LIKE 'xstate.after%'`);
  return rows[0]!.n;
}

async function lateness(db: Db, stored: Map<string, number>, approx: Map<string, number>) {
  const { rows } = await db.query<{ key: string; at: number }>(
    `SELECT key, min(at) AS at FROM transitions WHERE type = 'reminder' AND event_type LIKE 'xstate.after%' GROUP BY key`,
  );
  const values = new Float64Array(rows.length);
  const perSecond = new Map<number, number>();
  rows.forEach((r, i) => {
    const due = stored.get(r.key) ?? approx.get(r.key)!;
    values[i] = r.at - due;
    const s = Math.floor(r.at / 1000);
    perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
  });
  values.sort();
  return {
    n: rows.length,
    p50: round(percentile(values, 50)),
    p99: round(percentile(values, 99)),
    max: round(values[values.length - 1] ?? 0),
    min: round(values[0] ?? 0),
    peakPerSec: [...perSecond.values()].reduce((a, b) => Math.max(a, b), 0),
  };
}

async function sleepUntil(t: number): Promise<void> {
  const ms = t - Date.now();
  if (ms > 0) await sleep(ms);
}

main().catch((err) => {
  process.stderr.write(`timers bench failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
