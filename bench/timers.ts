/**
 * Durable timers on the real clock: many `reminder` actors armed in-process, their due times
 * spread over a window that opens after arming, then lateness = when the `fired` transition was
 * recorded (transitions.at) − the due time the runtime stored (timers.due_at). Two modes, each
 * in its own process: resident (actors stay in memory, XState's own timeouts fire) and
 * passivated (actors are evicted before they fall due and the runtime's timer wheel wakes them).
 *
 *   npx tsx bench/timers.ts --db=external|embedded [--count=100000] [--window-ms=60000]
 *                           [--mode=resident|passivated] [--idle-ms=2000] [--concurrency=200]
 */
import { fileURLToPath } from 'node:url';
import { ActorSystem } from '../actors/system.ts';
import { reminderType } from '../http/modules/demo.ts';
import type { Db } from '../storage/db.ts';
import { dbKind, intArg, parseArgs } from './lib/args.ts';
import { runBench } from './lib/child.ts';
import { benchDb } from './lib/db.ts';
import { benchJson, log, rssSampler, sleep } from './lib/report.ts';
import { percentile, round } from './lib/stats.ts';

const args = parseArgs();
const kind = dbKind(args);
const count = intArg(args, 'count', 100_000);
const windowMs = intArg(args, 'window-ms', 60_000);
const idleMs = intArg(args, 'idle-ms', 2000);
const concurrency = intArg(args, 'concurrency', 200);
const poolSize = intArg(args, 'pool', 10);
/** Arming rate assumed until one is measured, to place the window after arming. */
const rateGuess = intArg(args, 'arm-rate-guess', 800);
const TARGET_P99_MS = 100;

type Mode = 'resident' | 'passivated';

async function main(): Promise<void> {
  const mode = args.get('mode');
  if (mode === 'resident' || mode === 'passivated') return benchJson(await runMode(mode));
  if (mode !== undefined) throw new Error(`--mode must be resident or passivated (got '${mode}')`);
  // Each mode in a fresh process, so the second one's RSS does not carry the first one's heap.
  const self = fileURLToPath(import.meta.url);
  const common = [`--db=${kind}`, `--count=${count}`, `--window-ms=${windowMs}`, `--idle-ms=${idleMs}`, `--concurrency=${concurrency}`, `--pool=${poolSize}`, `--arm-rate-guess=${rateGuess}`];
  const nodeArgs = ['--max-old-space-size=8192'];
  const resident = await runBench(self, ['--mode=resident', ...common], { nodeArgs });
  const passivated = await runBench(self, ['--mode=passivated', ...common], { nodeArgs });
  benchJson({ bench: 'timers', db: kind, count, windowMs, resident, passivated, targetP99Ms: TARGET_P99_MS });
}

async function runMode(mode: Mode) {
  const store = await benchDb({ kind, label: `timers_${mode}`, poolSize });
  const system = new ActorSystem({ db: store.db });
  system.register(reminderType({ idleTimeoutMs: mode === 'resident' ? 24 * 3_600_000 : idleMs }));
  await system.start();
  const rss = rssSampler(200);
  try {
    log(`timers bench (${mode}) on ${kind} Postgres: ${count} reminders over a ${windowMs} ms window`);
    const arming = await armAll(system, mode);
    log(`  armed ${count} in ${arming.ms} ms (${arming.perSec}/s); ${arming.clamped} had their due time before arming ended`);
    const armedRss = Math.round(process.memoryUsage().rss / 2 ** 20);

    const due = await storedDueTimes(store.db);
    let firstDue = Infinity;
    let lastDue = -Infinity;
    for (const d of due.values()) {
      firstDue = Math.min(firstDue, d);
      lastDue = Math.max(lastDue, d);
    }
    await sleepUntil(firstDue - 200);
    const residentAtWindow = system.residentCount.activations;
    const stats0 = { ...system.stats };
    log(`  window ${new Date(firstDue).toISOString()} .. +${lastDue - firstDue} ms; ${due.size} timers stored; ${residentAtWindow} actors resident as it opens`);

    let fired = 0;
    while (Date.now() < lastDue + 30_000) {
      fired = await firedCount(store.db);
      if (fired >= count) break;
      await sleep(1000);
    }
    const wokenByWheel = system.stats.activations - stats0.activations;
    const late = await lateness(store.db, due, arming.dueByKey);
    const peakRssMb = rss.stop();
    const result = {
      mode,
      count,
      fired: late.n,
      missing: count - late.n,
      armPerSec: arming.perSec,
      armMs: arming.ms,
      dueBeforeArmingEnded: arming.clamped,
      windowMs: lastDue - firstDue,
      peakFiresPerSec: late.peakPerSec,
      latenessMs: { p50: late.p50, p99: late.p99, max: late.max, min: late.min },
      residentAtWindow,
      wokenByTimerWheel: wokenByWheel,
      rssAfterArmingMb: armedRss,
      peakRssMb,
      meetsTarget: late.n === count && late.p99 < TARGET_P99_MS,
    };
    log(
      `  ${mode}: ${late.n}/${count} fired; lateness p50 ${late.p50} ms, p99 ${late.p99} ms, max ${late.max} ms (min ${late.min}); ` +
        `peak ${late.peakPerSec} fires/s; ${wokenByWheel} actors woken by the timer wheel; peak RSS ${peakRssMb} MiB`,
    );
    return result;
  } finally {
    rss.stop();
    await system.stop();
    await store.cleanup();
  }
}

/**
 * Arms every reminder with bounded concurrency, in random order of due time. The window is
 * placed after the projected end of arming (re-projected as the rate becomes known), plus the
 * idle timeout in passivated mode so every actor is evicted before its timer falls due.
 */
async function armAll(system: ActorSystem, mode: Mode) {
  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const margin = mode === 'passivated' ? idleMs + 3000 : 2000;
  const t0 = Date.now();
  let windowStart = t0 + (count / rateGuess) * 1000 + margin;
  const dueByKey = new Map<string, number>();
  let next = 0;
  let done = 0;
  let clamped = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = order[next++]!;
        const key = `r${i}`;
        const target = windowStart + (i / count) * windowMs;
        const delayMs = Math.max(0, Math.round(target - Date.now()));
        dueByKey.set(key, Date.now() + delayMs); // approximate; the stored due_at is used when present
        await system.send('reminder', key, { type: 'arm', delayMs });
        if (++done % 1000 === 0 && done < count) {
          const elapsed = Date.now() - t0;
          windowStart = Date.now() + ((count - done) / (done / elapsed)) * 1.1 + margin;
        }
      }
    }),
  );
  await system.settled();
  const end = Date.now();
  for (const dueAt of dueByKey.values()) if (dueAt < end) clamped++;
  const ms = end - t0;
  return { ms, perSec: Math.round(count / (ms / 1000)), clamped, dueByKey };
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
