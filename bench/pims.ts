/**
 * Practice-system visits (issue 4) on the real clock: 10,000 open visits in a simulator (5 ms
 * latency, no rate limit of its own), brought in by the census, each refreshing its line items
 * when they reach the max age (60 s). This process runs the runtime and the visit module (as
 * http/main.ts wires them; the simulator too, so its CPU counts here). Measured:
 * - refresh lateness: when the simulator saw each visit's first refresh − the due time the
 *   runtime stored for it (target p99 < 1 s);
 * - requests per refresh (target exactly 1);
 * - CPU and RSS while idle between the first fetches and the first refreshes, and while refreshing;
 * - a restart with 10,000 visits amid a round of refreshes (graceful stop, 5 s down): time until a new system is up and
 *   until the first refresh reaches the simulator, and the lateness of refreshes due meanwhile;
 * - in simulated time, the age of line items when a reader asks, the old flow (one visit id popped
 *   every 10 s) against ours (the visit machine's own schedule plus the lateness measured above),
 *   at 300 and 10,000 open visits.
 *
 *   npx tsx bench/pims.ts --db=external|embedded [--visits=10000] [--max-age-ms=60000]
 *                         [--rate=1000] [--latency=5] [--idle-ms=N (visits' idle timeout; default: the module's)]
 *
 * The rate limit is on Redis when REDIS_URL is set (as in a cluster), in-process otherwise.
 */
import pino from 'pino';
import { systemClock } from '../actors/clock.ts';
import { ActorSystem } from '../actors/system.ts';
import { createPimsModule } from '../http/modules/pims/module.ts';
import { startPimsSimulator } from '../integrations/pims/simulator.ts';
import { createCoordination } from '../storage/coordination/index.ts';
import type { Db } from '../storage/db.ts';
import { dbKind, intArg, parseArgs } from './lib/args.ts';
import { benchDb, postmasterPid } from './lib/db.ts';
import { cpuMeter } from './lib/cpu.ts';
import { benchJson, log, procMemory, rssSampler, sleep } from './lib/report.ts';
import { round, summarize } from './lib/stats.ts';
import { visitAges } from './lib/visit-ages.ts';

const args = parseArgs();
const kind = dbKind(args);
const visits = intArg(args, 'visits', 10_000);
const maxAgeMs = intArg(args, 'max-age-ms', 60_000);
const rate = intArg(args, 'rate', 1_000);
const latencyMs = intArg(args, 'latency', 5);
const visitIdleMs = args.has('idle-ms') ? intArg(args, 'idle-ms', 0) : undefined;

const TARGET = { latenessP99Ms: 1_000, requestsPerRefresh: 1 };

async function main(): Promise<void> {
  const store = await benchDb({ kind, label: 'pims' });
  const sim = await startPimsSimulator({ visitCount: visits, itemsPerVisit: 5, latencyMs, seed: 5 });
  const coordination = await createCoordination({ redisUrl: process.env.REDIS_URL, keyPrefix: `bench${process.pid}:` });
  const logger = pino({ level: 'warn' });
  const rss = rssSampler();
  const postmaster = await postmasterPid(store.db);
  const boot = async (db: Db) => {
    const system = new ActorSystem({ db, logger, clock: systemClock });
    const module = createPimsModule({
      db,
      system,
      clock: systemClock,
      logger,
      limiter: coordination.rateLimiter,
      pubsub: coordination.pubsub,
      settings: { baseUrl: sim.url, ratePerSec: rate, timeoutMs: 5_000, censusIntervalMs: 3_600_000, timing: { maxAgeMs }, ...(visitIdleMs ? { visitIdleMs } : {}) },
    });
    await system.start();
    await module.start();
    return { system, module, stop: async () => (await system.stop(), await module.stop()) };
  };
  const visitCalls = () => sim.stats.calls.filter((c) => c.visitId !== undefined);
  const dueTimes = async () =>
    new Map((await store.db.query<{ key: string; due_at: string }>(`SELECT key, due_at FROM timers WHERE type = 'visit'`)).rows.map((r) => [r.key, Number(r.due_at)]));
  try {
    log(`pims bench on ${kind} Postgres: ${visits} open visits, max age ${maxAgeMs} ms, simulator latency ${latencyMs} ms, rate limit ${rate}/s (${coordination.kind})`);
    // 1. The census brings every open visit in; each fetches its items once.
    const t0 = Date.now();
    let node = await boot(store.db);
    await waitFor(() => new Set(visitCalls().map((c) => c.visitId)).size >= visits, 120_000, 'first fetches');
    const firstFetchMs = Date.now() - t0;
    await waitFor(async () => (await dueTimes()).size >= visits, 60_000, 'refresh timers stored');
    const due = await dueTimes();
    const lastFirstFetch = Math.max(...visitCalls().map((c) => c.at));
    log(`  census + first fetch of ${visits} visits: ${firstFetchMs} ms (${round(visits / (firstFetchMs / 1000), 0)} visits/s)`);

    // 2. Idle: everything fetched, no refresh due yet.
    const earliest = Math.min(...due.values());
    const idleMs = Math.min(20_000, earliest - Date.now() - 2_000);
    let idle: Awaited<ReturnType<typeof measure>> | null = null;
    if (idleMs > 3_000) {
      await sleep(1_000);
      idle = await measure(idleMs - 1_000, postmaster);
      log(`  idle between refreshes (${idleMs - 1_000} ms): CPU ${idle.cpuPct}% of a core (runtime + simulator), postgres ${idle.pgCpuPct}%, RSS ${idle.rssMb} MiB, ${node.system.residentCount.activations} visits resident`);
    } else {
      log(`  no idle window before the first refreshes (first fetches took too long)`);
    }

    // 3. The first refresh of every visit, against the due time the runtime stored.
    const latest = Math.max(...due.values());
    const refreshing = await measure(Math.max(1_000, latest - Date.now() + 3_000), postmaster);
    await sleep(2_000);
    const byVisit = groupByVisit(visitCalls());
    const lateness: number[] = [];
    const perRefresh: number[] = [];
    for (const [visit, at] of due) {
      const mine = (byVisit.get(visit) ?? []).filter((at2) => at2 > lastFirstFetch - 1 && at2 >= at - 5).map((at2) => ({ at: at2 }));
      const within = mine.filter((c) => c.at < at + 0.7 * maxAgeMs);
      if (within.length) lateness.push(within[0]!.at - at);
      perRefresh.push(within.length);
    }
    const late = summarize(lateness);
    const refreshed = perRefresh.filter((n) => n > 0).length;
    const meanPerRefresh = round(perRefresh.reduce((a, b) => a + b, 0) / Math.max(1, refreshed), 3);
    log(`  refresh lateness: p50 ${late.p50} / p99 ${late.p99} / max ${late.max} ms over ${late.n} refreshes; ${refreshed}/${visits} refreshed; requests per refresh mean ${meanPerRefresh}, max ${Math.max(...perRefresh)}`);
    log(`  while refreshing: CPU ${refreshing.cpuPct}% of a core (runtime + simulator), postgres ${refreshing.pgCpuPct}%, RSS ${refreshing.rssMb} MiB`);

    // 4. A restart in the middle of the next round of refreshes: stopped, down 5 s (refreshes
    // fall due meanwhile), started again.
    const nextRound = Math.min(...(await dueTimes()).values());
    await sleep(Math.max(0, nextRound + 0.1 * maxAgeMs - Date.now()));
    await node.stop();
    const downAt = Date.now();
    await sleep(5_000);
    const dueWhileDown = await dueTimes();
    const restartAt = Date.now();
    node = await boot(store.db);
    const upMs = Date.now() - restartAt;
    await waitFor(() => visitCalls().some((c) => c.at >= restartAt), 60_000, 'first refresh after restart');
    const firstAfterMs = Math.min(...visitCalls().filter((c) => c.at >= restartAt).map((c) => c.at)) - restartAt;
    const overdue = [...dueWhileDown.entries()].filter(([, at]) => at <= restartAt);
    const afterRestart = () => groupByVisit(visitCalls().filter((c) => c.at >= restartAt));
    await waitFor(() => {
      const seen = afterRestart();
      return overdue.every(([v]) => seen.has(v));
    }, 120_000, 'overdue refreshes');
    const seen = afterRestart();
    const caughtUpMs = overdue.length ? Math.max(...overdue.map(([v]) => Math.min(...seen.get(v)!))) - restartAt : 0;
    log(`  restart (down ${restartAt - downAt} ms, ${overdue.length} refreshes fell due meanwhile): up in ${upMs} ms, first refresh ${firstAfterMs} ms after the restart began, all overdue ones done ${caughtUpMs} ms after`);
    await node.stop();

    // 5. Simulated time: the age of line items when a reader asks, old flow against ours.
    const ages = [300, visits].map((n) => ({ visits: n, ...visitAges({ visits: n, maxAgeMs, popEveryMs: 10_000, readers: 100_000, lateness }) }));
    for (const a of ages) {
      const s = (x: { p50: number; p99: number; max: number }) => `p50 ${round(x.p50 / 1000)} / p99 ${round(x.p99 / 1000)} / max ${round(x.max / 1000)} s`;
      log(`  age when a reader asks, ${a.visits} open visits (simulated ${round(a.windowMs / 3_600_000)} h): old flow ${s(a.old)}; ours ${s(a.ours)}`);
    }
    const peakRssMb = rss.stop();
    const meets = late.p99 < TARGET.latenessP99Ms && meanPerRefresh === 1 && Math.max(...perRefresh) === 1 && refreshed === visits;
    log(`peak RSS ${peakRssMb} MiB (runtime + simulator); targets (lateness p99 < 1 s, exactly 1 request per refresh): ${meets ? 'met' : 'NOT met'}`);
    benchJson({
      bench: 'pims',
      db: kind,
      limiter: coordination.kind,
      visits,
      maxAgeMs,
      rate,
      latencyMs,
      firstFetchMs,
      idle,
      refreshing,
      latenessMs: late,
      refreshed,
      requestsPerRefresh: { mean: meanPerRefresh, max: Math.max(...perRefresh) },
      restart: { downMs: restartAt - downAt, overdue: overdue.length, upMs, firstRefreshMs: firstAfterMs, caughtUpMs },
      ages: ages.map((a) => ({ visits: a.visits, oldMs: a.old, oursMs: a.ours })),
      peakRssMb,
      target: TARGET,
      meetsTarget: meets,
    });
  } finally {
    await sim.close();
    await coordination.close();
    await store.cleanup();
  }
}

/** Arrival times at the simulator, by visit. */
function groupByVisit(calls: { visitId?: string; at: number }[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const c of calls) {
    if (c.visitId === undefined) continue;
    const list = out.get(c.visitId) ?? [];
    list.push(c.at);
    out.set(c.visitId, list);
  }
  return out;
}

/** CPU of this process and of PostgreSQL over `ms`, and RSS at its end. */
async function measure(ms: number, postmaster: number) {
  const cpu = cpuMeter({ pids: { self: process.pid }, postmaster });
  cpu.open();
  await sleep(ms);
  cpu.close();
  const f = cpu.figures();
  return { ms: Math.round(ms), cpuPct: f.selfCpuPct!, pgCpuPct: f.pgCpuPct!, rssMb: procMemory().rssMb };
}

async function waitFor(cond: () => boolean | Promise<boolean>, maxMs: number, what: string): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${maxMs} ms`);
    await sleep(100);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
