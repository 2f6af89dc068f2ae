/**
 * The insurer line: how busy our sync keeps it compared with bare loops. One simulator (80%
 * failures, 2 ms latency, no hangs), on a thread of its own, serves first two plain loops with the
 * insurer client (no runtime, no database: bench/lib/bare-insurer.ts), one ignoring Retry-After
 * and one honouring it, then our full sync in this process (ActorSystem + insurer module with its
 * line thread + routes through `app.request`, fresh database, the line on Redis or on Postgres).
 * Utilisation = time with exactly one request in flight ÷ wall time, from what the simulator
 * recorded; the target compares ours with the loop honouring Retry-After, as ours must. Each
 * line variant runs in its own process, with its own simulator and bare loops.
 *
 * To tell where the line's time goes: for the bare loops each gap between requests split into
 * client / between / on the way to the simulator; for ours a 5 ms sampler of whether the line
 * was idle with requests queued; Postgres round trips, pool latency and lock waits.
 *
 *   npx tsx bench/insurer.ts --db=external|embedded [--line=redis|postgres] [--patients=10000]
 *                            [--latency=2] [--failure=0.8] [--limit-min=30]
 *
 * `--limit-min` bounds each variant (bare loops and ours together); 10,000 patients take about 10
 * minutes per variant on the shared 2-core machine. Redis: REDIS_URL (default
 * redis://127.0.0.1:6379), keys under a random prefix, removed after.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pino from 'pino';
import { systemClock } from '../actors/clock.ts';
import { ActorSystem } from '../actors/system.ts';
import { createApp } from '../http/app.ts';
import { loadConfig } from '../http/config.ts';
import { createInsurerModule } from '../http/modules/insurer/module.ts';
import { insurerRoutes } from '../http/modules/insurer/routes.ts';
import { patientIdOf } from '../integrations/insurer/simulator-data.ts';
import { preciseNow } from '../integrations/insurer/simulator-stats.ts';
import { createFieldCipher } from '../storage/crypto.ts';
import { createDb, type Db } from '../storage/db.ts';
import { createLine } from '../storage/line/index.ts';
import { dbKind, intArg, parseArgs } from './lib/args.ts';
import { bareLoop, type BareLoop } from './lib/bare-insurer.ts';
import { runBench } from './lib/child.ts';
import { onInterrupt } from './lib/cleanup.ts';
import { cpuMeter } from './lib/cpu.ts';
import { benchDb, postmasterPid } from './lib/db.ts';
import { gapBreakdown, traceFetch, type GapBreakdown } from './lib/fetch-trace.ts';
import { instrumentDb } from './lib/instrumented-db.ts';
import { lineUsage, type LineUsage } from './lib/line-usage.ts';
import { benchJson, log, rssSampler, sleep } from './lib/report.ts';
import { startSimThread, type SimSnapshot, type SimThread } from './lib/sim-thread.ts';
import { percentile, round, summarize, type LatencySummary } from './lib/stats.ts';

const args = parseArgs();
const kind = dbKind(args);
const patients = intArg(args, 'patients', 10_000);
const latencyMs = numArg('latency', 2);
const failureRate = numArg('failure', 0.8);
const limitMin = intArg(args, 'limit-min', 30);
const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const TOKEN = 'bench-admin-token-0123456789abcdef';
const INSURER = { id: 'KK01', timeoutMs: 2_000, dailyAt: '02:00', timeZone: 'Europe/Berlin' };
const TARGET = { utilisationRatio: 0.9, ackP99Ms: 50, maxInFlight: 1 };

type LineKind = 'redis' | 'postgres';

function idleByGap(idle: Record<string, number>): string {
  return Object.entries(idle).map(([k, v]) => `${k}: ${v}`).join(', ');
}

function numArg(name: string, fallback: number): number {
  const raw = args.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number (got '${raw}')`);
  return n;
}

/** The line over one phase, from the simulator's record (busy/overlap time summed as it went). */
interface LinePhase {
  wallMs: number;
  requests: number;
  /** Time with exactly one request in flight ÷ wall time. */
  utilisation: number;
  meanRequestMs: number;
  /** requests × mean request time: the wall time of a line never idle. */
  idealMs: number;
  wallOverIdeal: number;
  maxInFlight: number;
  overlapMs: number;
  listingMs: number;
  listingUtilisation: number;
  usage: LineUsage;
}

async function main(): Promise<void> {
  const which = args.get('line');
  if (which === 'redis' || which === 'postgres') return benchJson(await runVariant(which));
  if (which !== undefined) throw new Error(`--line must be redis or postgres (got '${which}')`);
  // Each line variant in a fresh process: its own simulator, bare loop, heap and RSS.
  const self = fileURLToPath(import.meta.url);
  const common = [`--db=${kind}`, `--patients=${patients}`, `--latency=${latencyMs}`, `--failure=${failureRate}`, `--limit-min=${limitMin}`];
  const out: Record<string, Record<string, any>> = {};
  const failures: string[] = [];
  for (const line of ['redis', 'postgres'] as const) {
    log(`== --line=${line}`);
    try {
      out[line] = await runBench(self, [`--line=${line}`, ...common]);
    } catch (err) {
      failures.push((err as Error).message);
      log(`  FAILED: ${(err as Error).message}`);
    }
  }
  log('summary:');
  for (const f of failures) log(`  FAILED: ${f}`);
  for (const [line, r] of Object.entries(out)) {
    log(
      `  ${line.padEnd(8)} utilisation ours ${r.ours.utilisation} / bare ${r.bare.utilisation} = ${r.utilisationRatio}; ` +
        `wall ${s(r.ours.wallMs)} vs bare ${s(r.bare.wallMs)}; ack p99 ${r.ours.ackMs.p99} ms; max in flight ${r.ours.maxInFlight}; peak RSS ${r.ours.peakRssMb} MiB; ${r.meetsTarget ? 'targets met' : 'targets NOT met'}`,
    );
  }
  benchJson({ bench: 'insurer', db: kind, patients, latencyMs, failureRate, redis: out.redis, postgres: out.postgres, failures });
  if (failures.length) process.exitCode = 1;
}

/**
 * Process warnings, counted by name (the first of each printed): the runtime's per-attempt abort
 * listeners can trip MaxListenersExceededWarning thousands of times in one run.
 */
function countWarnings(): Record<string, number> {
  const seen: Record<string, number> = {};
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    seen[w.name] = (seen[w.name] ?? 0) + 1;
    if (seen[w.name] === 1) process.stderr.write(`warning (printed once, counted in BENCH_JSON): ${w.name}: ${w.message}\n`);
  });
  return seen;
}

/** The commit measured, and whether product code differed from it (the tree may be shared). */
function codeVersion(): { commit: string; dirty: boolean } {
  try {
    const git = (...a: string[]) => execFileSync('git', a, { encoding: 'utf8' }).trim();
    return { commit: git('rev-parse', '--short', 'HEAD'), dirty: git('status', '--porcelain', '--', 'actors', 'http', 'storage', 'machines', 'integrations') !== '' };
  } catch {
    return { commit: 'unknown', dirty: false };
  }
}

async function runVariant(line: LineKind) {
  const warnings = countWarnings();
  const code = codeVersion();
  const limitMs = limitMin * 60_000;
  const deadline = Date.now() + limitMs;
  // Last resort if something hangs past the deadline checks: SIGTERM runs the cleanups.
  const watchdog = setTimeout(() => {
    process.stderr.write(`insurer bench (${line}) still running ${limitMin} min + 1 min after start: aborting\n`);
    process.kill(process.pid, 'SIGTERM');
  }, limitMs + 60_000);
  watchdog.unref();
  const sim = await startSimThread({ patientCount: patients, failureRate, latencyMs, failureMix: { timeout: 0 } });
  const forget = onInterrupt(() => sim.close());
  try {
    log(`insurer bench, line on ${line}, ${kind} Postgres: ${patients} patients, ${failureRate * 100}% failures, ${latencyMs} ms latency; limit ${limitMin} min; code at ${code.commit}${code.dirty ? ' + uncommitted changes' : ''}`);
    const bareIgnoring = await bare(sim, deadline, false);
    log(`  bare loop, Retry-After ignored:  ${phaseLine(bareIgnoring)}`);
    const bareHonouring = await bare(sim, deadline, true);
    log(`  bare loop, Retry-After honoured: ${phaseLine(bareHonouring)}`);
    const ours = await oursRun(sim, line, deadline);
    log(`  ours:                            ${phaseLine(ours)}`);
    const ratio = (b: LinePhase) => round(ours.utilisation / Math.max(1e-9, b.utilisation), 3);
    const utilisationRatio = ratio(bareHonouring);
    const utilisationRatioVsIgnoring = ratio(bareIgnoring);
    const meetsTarget = utilisationRatio >= TARGET.utilisationRatio && ours.ackMs.p99 < TARGET.ackP99Ms && ours.maxInFlight <= TARGET.maxInFlight && ours.countsAddUp;
    for (const row of table(bareIgnoring, bareHonouring, ours, line, utilisationRatio, utilisationRatioVsIgnoring)) log(row);
    log(`  ${meetsTarget ? 'targets met' : 'targets NOT met'} (utilisation ratio ≥ ${TARGET.utilisationRatio}, ack p99 < ${TARGET.ackP99Ms} ms, at most ${TARGET.maxInFlight} in flight, counts add up)`);
    if (Object.keys(warnings).length) log(`  process warnings: ${JSON.stringify(warnings)}`);
    return { bench: 'insurer', db: kind, line, patients, latencyMs, failureRate, code, bare: bareHonouring, bareIgnoringRetryAfter: bareIgnoring, ours, utilisationRatio, utilisationRatioVsIgnoring, target: TARGET, meetsTarget, warnings };
  } finally {
    clearTimeout(watchdog);
    await sim.close();
    forget();
  }
}

/** CPU of this process (simulator and load included) over a phase: % of a core, and ms per insurer request. */
function selfCpu(used: NodeJS.CpuUsage, phase: LinePhase) {
  const ms = (used.user + used.system) / 1000;
  return { selfCpuPct: Math.round((ms / phase.wallMs) * 100), cpuMsPerRequest: round(ms / Math.max(1, phase.requests), 2) };
}

/** A window over the simulator: resets its record at open, reads busy/overlap at close. */
async function simWindow(sim: SimThread) {
  await sim.reset();
  const t0 = preciseNow();
  return {
    t0,
    async close(listingEnd: number): Promise<LinePhase & { recorded: SimSnapshot['requests'] }> {
      const t1 = preciseNow();
      const snap = await sim.snapshot();
      const wallMs = t1 - t0;
      const usage = lineUsage(snap.requests, t0, t1);
      const listing = lineUsage(snap.requests, t0, listingEnd, 1);
      const idealMs = usage.requests * usage.meanRequestMs;
      return {
        wallMs: Math.round(wallMs),
        requests: usage.requests,
        utilisation: round((snap.busyMs - snap.overlapMs) / wallMs, 3),
        meanRequestMs: usage.meanRequestMs,
        idealMs: Math.round(idealMs),
        wallOverIdeal: round(wallMs / Math.max(1, idealMs), 3),
        maxInFlight: snap.maxInFlight,
        overlapMs: round(snap.overlapMs),
        listingMs: Math.round(listingEnd - t0),
        listingUtilisation: listing.utilisationByTenth[0]!,
        usage,
        recorded: snap.requests,
      };
    },
  };
}

/**
 * The line's limit on this machine: the same requests one after another with the insurer client
 * alone (bench/lib/bare-insurer.ts), measured like ours.
 */
async function bare(sim: SimThread, deadline: number, honourRetryAfter: boolean) {
  const trace = traceFetch(sim.url);
  const cpu0 = process.cpuUsage();
  const machine = cpuMeter({});
  machine.open();
  const w = await simWindow(sim);
  const run: BareLoop = await bareLoop({ url: sim.url, timeoutMs: INSURER.timeoutMs, patients, honourRetryAfter, deadline, limitMin });
  const { recorded, ...phase } = await w.close(run.listingEnd);
  const cpu = process.cpuUsage(cpu0);
  machine.close();
  trace.uninstall();
  return { ...phase, gapParts: gapBreakdown(recorded, trace), ...selfCpu(cpu, phase), machineBusyPct: machine.figures().machineBusyPct! };
}

/** Our full sync in this process, wired as http/main.ts wires it, driven through the routes. */
async function oursRun(sim: SimThread, line: LineKind, deadline: number) {
  const store = await benchDb({ kind, label: `insurer_${line}` });
  // Everything but the line goes through this wrapper: round trips and their latency (pool wait included).
  const { db, counters: dbCounters } = instrumentDb(store.db);
  const watchDb = createDb({ connectionString: store.url, max: 1 }); // for pg_stat_activity, off the pool under test
  const lineDb = createDb({ connectionString: store.url, max: 3 }); // as http/main.ts: the line's own pool
  const keyPrefix = `bench-insurer:${process.pid}:${randomBytes(3).toString('hex')}:`;
  const redis = line === 'redis' ? new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 }) : undefined;
  // This thread's line serves the routes (pause, progress); the line thread opens its own.
  const theLine = await createLine({ db: lineDb, ...(redis ? { redis: { url: redisUrl, keyPrefix } } : {}) });
  const lineSpec = { db: { connectionString: store.url }, redis: redis ? { url: redisUrl, keyPrefix } : undefined };
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const system = new ActorSystem({ db, clock: systemClock, logger });
  const cipher = createFieldCipher({ keys: [{ id: 'k1', key: randomBytes(32) }], lookupKey: randomBytes(32) });
  // Production tuning (back-off, page limit, attempts): none passed, as http/main.ts.
  // The line thread's priority as http/main.ts sets it (INSURER_LINE_NICE, default unless set here).
  const lineNice = loadConfig(process.env).INSURER_LINE_NICE;
  const module = createInsurerModule({ db, system, clock: systemClock, logger, cipher, lineSpec, lineNice, node: `bench:${process.pid}`, insurers: [{ ...INSURER, baseUrl: sim.url }] });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await module.stop();
    await system.stop();
    await theLine.close();
    await lineDb.close();
    await watchDb.close();
    if (redis) {
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
    await store.cleanup();
  };
  const forget = onInterrupt(stop);
  try {
    await system.start();
    await module.start();
    const app = createApp({ system, logger, tokens: [{ token: TOKEN, role: 'admin', subject: 'bench' }], ready: async () => {}, routes: [insurerRoutes({ db, system, clock: systemClock, line: theLine, module })] });
    const req = (path: string, method = 'GET') => app.request(path, { method, headers: { authorization: `Bearer ${TOKEN}` } });

    let redisPid: number | undefined;
    if (redis) {
      await redis.connect();
      redisPid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]) || undefined;
    }
    const cpu = cpuMeter({ postmaster: await postmasterPid(store.db), pids: redisPid ? { redis: redisPid } : {} });
    const rssBeforeMb = Math.round(process.memoryUsage().rss / 2 ** 20);
    const rss = rssSampler(200);
    const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    const ownCpu0 = process.cpuUsage();

    loopDelay.enable();
    cpu.open();
    Object.assign(dbCounters, { queries: 0, transactions: 0, txStatements: 0, txMs: 0, queryMs: [], record: true });
    const backends = backendSampler(watchDb);
    const idle = idleSampler(sim, module.handles.get(INSURER.id)!.line);
    const w = await simWindow(sim);
    const started = await req(`/insurers/${INSURER.id}/sync`, 'POST');
    if (started.status !== 202) throw new Error(`POST /insurers/${INSURER.id}/sync answered ${started.status}: ${await started.text()}`);

    // Single-patient syncs while the run goes on: one every ~200 ms, for a patient already listed.
    let listed = 0;
    let finished = false;
    const acks: number[] = [];
    const ackStatus: Record<string, number> = {};
    const pinger = (async () => {
      while (!finished) {
        await sleep(200);
        if (finished || listed === 0) continue;
        const pid = patientIdOf(1 + Math.floor(Math.random() * listed));
        const a = performance.now();
        const res = await req(`/insurers/${INSURER.id}/patients/${pid}/sync`, 'POST');
        const ms = performance.now() - a;
        ackStatus[res.status] = (ackStatus[res.status] ?? 0) + 1;
        await res.text();
        if (res.status === 202) acks.push(ms);
      }
    })();

    let last: any;
    let listingEnd = 0;
    const progressMs: number[] = [];
    try {
      for (;;) {
        const a = performance.now();
        last = await (await req(`/insurers/${INSURER.id}/sync`)).json();
        progressMs.push(performance.now() - a);
        listed = last.counts.listed;
        if (!listingEnd && last.runState !== 'listing') listingEnd = preciseNow();
        if (last.runState === 'completed' || last.runState === 'failed') break;
        if (Date.now() > deadline) {
          throw new Error(`our sync (line on ${line}) did not finish within ${limitMin} min; last progress: ${JSON.stringify({ state: last.runState, counts: last.counts, requests: last.requests })}`);
        }
        await sleep(100);
      }
    } finally {
      finished = true;
    }
    const { recorded, ...phase } = await w.close(listingEnd || preciseNow());
    const lineIdle = idle.stop(w.t0, w.t0 + phase.wallMs);
    dbCounters.record = false;
    const pg = {
      ...(await backends.stop()),
      queriesOutsideTx: dbCounters.queries,
      queryMs: summarize(dbCounters.queryMs),
      transactions: dbCounters.transactions,
      meanTxMs: round(dbCounters.txMs / Math.max(1, dbCounters.transactions)),
      roundTripsPerRequest: round((dbCounters.queries + dbCounters.transactions * 2 + dbCounters.txStatements) / Math.max(1, phase.requests)),
    };
    cpu.close();
    loopDelay.disable();
    const ownCpu = process.cpuUsage(ownCpu0);
    await pinger;
    const peakRssMb = rss.stop();
    const interactive = await settleInteractive(db, deadline);
    const c = last.counts;
    const figures = {
      ...phase,
      runState: last.runState,
      lastError: last.lastError,
      counts: c,
      countsAddUp: c.listed === patients && c.new === patients && c.synced + c.cancelled_410 + c.failed === c.new && c.pending + c.retrying === 0,
      runRequests: last.requests,
      scheduler: { ...module.handles.get(INSURER.id)!.line.stats },
      lineIdle,
      pg,
      ackMs: summarize(acks),
      ackStatus,
      interactive,
      progressReadMs: summarize(progressMs),
      // The histogram holds whole sampling intervals: the delay is what exceeds the resolution.
      eventLoopDelayMs: { p50: delayMs(loopDelay.percentile(50)), p99: delayMs(loopDelay.percentile(99)), max: delayMs(loopDelay.max) },
      cpu: cpu.figures(),
      ...selfCpu(ownCpu, phase),
      rssBeforeMb,
      peakRssMb,
      linePriority: module.linePriority,
    };
    return figures;
  } finally {
    forget();
    await stop();
  }
}

/**
 * Why the line is idle: every few ms, with nothing in flight at the simulator, whether this
 * process had requests queued for it (as the line thread last reported). Shares of all
 * samples, over the run and by tenth of it, with the mean queue length. A queue with nothing in
 * flight is mostly requests waiting out a Retry-After or a back-off, or the gap between two requests.
 */
function idleSampler(sim: SimThread, line: { waiting: Record<string, number> }, everyMs = 5) {
  const BUSY = 0, EMPTY = 1, QUEUED = 2;
  const samples: { t: number; what: number; queued: number }[] = [];
  const timer = setInterval(() => {
    const t = preciseNow();
    const queued = Object.values(line.waiting).reduce((a, b) => a + b, 0);
    const what = sim.inFlightNow() > 0 ? BUSY : queued === 0 ? EMPTY : QUEUED;
    samples.push({ t, what, queued });
  }, everyMs);
  const shares = (of: typeof samples) => {
    const n = Math.max(1, of.length);
    const share = (w: number) => round(of.filter((x) => x.what === w).length / n, 2);
    return { samples: of.length, busy: share(BUSY), empty: share(EMPTY), queued: share(QUEUED), meanQueued: round(of.reduce((a, x) => a + x.queued, 0) / n) };
  };
  return {
    stop(t0: number, t1: number) {
      clearInterval(timer);
      const width = (t1 - t0) / 10;
      const byTenth = Array.from({ length: 10 }, (_, i) => shares(samples.filter((x) => x.t >= t0 + i * width && x.t < t0 + (i + 1) * width)));
      return { ...shares(samples), byTenth };
    },
  };
}

/**
 * This database's backends every 200 ms: how many run a statement, and how many of those wait
 * for a lock (the audit log's advisory lock serialises patient writes).
 */
function backendSampler(watch: Db) {
  const active: number[] = [];
  const waiting: number[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const { rows } = await watch.query<{ active: number; waiting: number }>(
        `SELECT count(*) FILTER (WHERE state = 'active')::int AS active,
                count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock')::int AS waiting
           FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`,
      );
      active.push(rows[0]!.active);
      waiting.push(rows[0]!.waiting);
      await sleep(200);
    }
  })();
  const mean = (xs: number[]) => round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length));
  return {
    async stop() {
      stopped = true;
      await loop;
      return { samples: active.length, meanActive: mean(active), maxActive: Math.max(0, ...active), meanWaitingOnLock: mean(waiting), maxWaitingOnLock: Math.max(0, ...waiting) };
    },
  };
}

/** Waits (bounded) for the single-patient syncs to end; their outcomes and time to finish. */
async function settleInteractive(db: Db, deadline: number) {
  const until = Math.min(deadline, Date.now() + 60_000);
  for (;;) {
    const { rows } = await db.query(`SELECT count(*)::int AS n FROM patient_syncs WHERE kind = 'interactive' AND status IN ('scheduled', 'running', 'retrying')`);
    if (rows[0].n === 0 || Date.now() > until) break;
    await sleep(200);
  }
  const { rows } = await db.query(`SELECT status, finished_at - created_at AS ms FROM patient_syncs WHERE kind = 'interactive'`);
  const byStatus: Record<string, number> = {};
  const done: number[] = [];
  for (const r of rows) {
    byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    if (r.ms !== null) done.push(Number(r.ms));
  }
  const sorted = Float64Array.from(done).sort();
  return { count: rows.length, byStatus, toFinishMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.length ? sorted[sorted.length - 1]! : 0 } };
}

const LOOP_RESOLUTION_MS = 10;
const delayMs = (ns: number) => round(Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS));
const s = (ms: number) => `${round(ms / 1000)} s`;
const lat = (l: LatencySummary) => `p50 ${l.p50} / p99 ${l.p99} / max ${l.max} ms`;

function phaseLine(p: LinePhase): string {
  return `${s(p.wallMs)}, ${p.requests} requests, utilisation ${p.utilisation}, wall/ideal ${p.wallOverIdeal}, max in flight ${p.maxInFlight}`;
}

const gapParts = (g: GapBreakdown) => `to client ${g.toClientMs}, between ${g.betweenMs} (line ${g.lineMs}), to simulator ${g.toSimulatorMs} ms; p50 ${g.p50.join(' / ')}`;

type BarePhase = Awaited<ReturnType<typeof bare>>;

function table(ignoring: BarePhase, b: BarePhase, ours: Awaited<ReturnType<typeof oursRun>>, line: LineKind, ratio: number, ratioVsIgnoring: number): string[] {
  const rows: [string, string, string][] = [
    ['bare loop, Retry-After ignored', `${phaseLine(ignoring)}; gap ${gapParts(ignoring.gapParts)}`, ''],
    ['', 'bare loop, Retry-After honoured', `ours (line on ${line})`],
    ['wall time', s(b.wallMs), s(ours.wallMs)],
    ['requests', `${b.requests} (${b.usage.byKind.list ?? 0} list)`, `${ours.requests} (${ours.usage.byKind.list ?? 0} list)`],
    ['mean request time', `${b.meanRequestMs} ms`, `${ours.meanRequestMs} ms`],
    ['ideal (requests × mean)', s(b.idealMs), s(ours.idealMs)],
    ['wall / ideal', String(b.wallOverIdeal), String(ours.wallOverIdeal)],
    ['utilisation (exactly 1 in flight)', String(b.utilisation), String(ours.utilisation)],
    ['  listing phase', `${b.listingUtilisation} over ${s(b.listingMs)}`, `${ours.listingUtilisation} over ${s(ours.listingMs)}`],
    ['  by tenth of the run', b.usage.utilisationByTenth.join(' '), ours.usage.utilisationByTenth.join(' ')],
    ['gap between requests', `mean ${b.usage.gapMs.mean}, ${lat(b.usage.gapMs)}`, `mean ${ours.usage.gapMs.mean}, ${lat(ours.usage.gapMs)}`],
    ['idle ÷ wall, by gap length (ms)', idleByGap(b.usage.idleByGap), idleByGap(ours.usage.idleByGap)],
    ['gap, split (means)', gapParts(b.gapParts), '(the line runs on its own thread: not traced)'],
    ['most in flight', String(b.maxInFlight), String(ours.maxInFlight)],
    ['line, sampled every 5 ms', '', `busy ${ours.lineIdle.busy}; idle with queue empty ${ours.lineIdle.empty}, idle with requests queued ${ours.lineIdle.queued}; ${ours.lineIdle.meanQueued} queued on average`],
    ...ours.lineIdle.byTenth.map((x, i): [string, string, string] => [`  tenth ${i + 1}`, '', `busy ${x.busy}, empty ${x.empty}, queued ${x.queued}; ${x.meanQueued} queued`]),
    ['single-sync ack (202)', '', `${lat(ours.ackMs)} (n ${ours.ackMs.n}; statuses ${JSON.stringify(ours.ackStatus)})`],
    ['single syncs to finish', '', `${ours.interactive.count}: ${JSON.stringify(ours.interactive.byStatus)}; p50 ${ours.interactive.toFinishMs.p50} / p99 ${ours.interactive.toFinishMs.p99} ms`],
    ['run counts', '', JSON.stringify(ours.counts) + (ours.countsAddUp ? ' (add up)' : ' (DO NOT add up)')],
    ['Postgres (module and runtime)', '', `${ours.pg.roundTripsPerRequest} round trips per insurer request; queries outside a transaction ${lat(ours.pg.queryMs)}; ${ours.pg.transactions} transactions, mean ${ours.pg.meanTxMs} ms; backends active ${ours.pg.meanActive} (max ${ours.pg.maxActive}), waiting on a lock ${ours.pg.meanWaitingOnLock} (max ${ours.pg.maxWaitingOnLock})`],
    ['progress read', '', lat(ours.progressReadMs)],
    ['event-loop delay', '', lat({ n: 0, ...ours.eventLoopDelayMs })],
    ['CPU of this process', `${b.selfCpuPct}% of a core, ${b.cpuMsPerRequest} ms per request`, `${ours.selfCpuPct}% of a core, ${ours.cpuMsPerRequest} ms per request`],
    ['machine busy (2 cores, all processes)', `${b.machineBusyPct}%`, `${ours.cpu.machineBusyPct}%`],
    ['CPU % of a core, others', '', Object.entries(ours.cpu).map(([k, v]) => `${k.replace(/CpuPct$/, '')} ${v}`).join(', ')],
    ['peak RSS (whole process)', '', `${ours.peakRssMb} MiB (${ours.rssBeforeMb} MiB before the run)`],
    ['line thread priority', '', ours.linePriority ? `nice ${ours.linePriority.nice}${ours.linePriority.refused ? ` (raise refused: ${ours.linePriority.refused})` : ''}` : '?'],
    ['utilisation ours ÷ bare', '', `${ratio} (target ≥ ${TARGET.utilisationRatio}); against the bare loop ignoring Retry-After ${ratioVsIgnoring}`],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map(([a, b, c]) => `  ${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`);
}

main().catch((err) => {
  process.stderr.write(`insurer bench failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
