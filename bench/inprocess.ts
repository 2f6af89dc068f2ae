/**
 * The runtime without HTTP: an ActorSystem in this process on a fresh database, driven by
 * concurrent senders calling `system.send` (resolves once the event is committed to the
 * journal) or `system.sendAndWait` (resolves once it is processed and its state committed).
 *
 *   npx tsx bench/inprocess.ts --db=external|embedded [--rounds=3] [--senders=50]
 *                              [--actors=10000] [--warmup-ms=2000] [--duration-ms=10000]
 */
import { ActorSystem } from '../actors/system.ts';
import { tallyType } from '../http/modules/demo.ts';
import { dbKind, intArg, parseArgs } from './lib/args.ts';
import { cpuMeter } from './lib/cpu.ts';
import { benchDb, postmasterPid } from './lib/db.ts';
import { instrumentDb, type DbCounters } from './lib/instrumented-db.ts';
import { closedLoop, type LoadResult } from './lib/load.ts';
import { benchJson, log } from './lib/report.ts';
import { medianOf, round } from './lib/stats.ts';

const args = parseArgs();
const kind = dbKind(args);
const rounds = intArg(args, 'rounds', 3);
const senders = intArg(args, 'senders', 50);
const actors = intArg(args, 'actors', 10_000);
const warmupMs = intArg(args, 'warmup-ms', 2000);
const durationMs = intArg(args, 'duration-ms', 10_000);
const poolSize = intArg(args, 'pool', 10);

interface Phase extends LoadResult {
  pgCpuPct: number;
  machineBusyPct: number;
  /** Committer flushes per second and the mean number of appends and saves each carried. */
  flushesPerSec: number;
  appendsPerFlush: number;
  savesPerFlush: number;
  /** Mean wall time of a group commit's batch write, and statements per flush (one write, plus a key read when keys were sent). */
  commitMs: number;
  statementsPerFlush: number;
  /** Queries outside the group commit (loads), per second. */
  otherQueriesPerSec: number;
  /** Time after the window until everything appended was processed and saved. */
  settleMs: number;
}

async function main(): Promise<void> {
  const store = await benchDb({ kind, label: 'inproc', poolSize });
  const { db, counters } = instrumentDb(store.db);
  const system = new ActorSystem({ db });
  // Large idle timeout: this measures resident actors; passivation is the timers bench's.
  system.register(tallyType({ idleTimeoutMs: 3_600_000 }));
  await system.start();
  try {
    log(`in-process bench on ${kind} Postgres: ${senders} senders, pool ${poolSize}, ${rounds} rounds of ${warmupMs} ms warm-up + ${durationMs} ms`);
    const postmaster = await postmasterPid(store.db);
    const before = { ...counters };
    const created = await createAll(system);
    const createQueries = round((counters.queries - before.queries) / actors);
    log(`  first event to each of ${actors} actors: ${created.perSec} actors/s (${created.ms} ms); ${createQueries} pool queries per new actor outside the group commit`);

    const variants = {
      spreadSend: (r: number) => (w: number, n: number) => send(system, `a${pick()}`, `r${r}w${w}n${n}`),
      hotSend: (r: number) => (w: number, n: number) => send(system, 'hot', `r${r}w${w}n${n}`),
      spreadWait: (r: number) => (w: number, n: number) => sendAndWait(system, `a${pick()}`, `r${r}w${w}n${n}`),
      hotWait: (r: number) => (w: number, n: number) => sendAndWait(system, 'hot', `r${r}w${w}n${n}`),
    };
    const results: Record<string, Phase[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const [name, make] of Object.entries(variants)) {
        const p = await phase(system, counters, postmaster, make(r));
        (results[name] ??= []).push(p);
        log(`  round ${r + 1} ${name.padEnd(10)} ${line(p)}`);
      }
    }
    const medians = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, medianOf(v)]));
    log('medians:');
    for (const [k, v] of Object.entries(medians)) log(`  ${k.padEnd(10)} ${line(v)}`);
    benchJson({ bench: 'inprocess', db: kind, senders, actors, poolSize, rounds, warmupMs, durationMs, createActorsPerSec: created.perSec, createQueriesPerActor: createQueries, ...medians });
  } finally {
    await system.stop();
    await store.cleanup();
  }
}

const pick = () => Math.floor(Math.random() * actors);

async function send(system: ActorSystem, key: string, id: string): Promise<string> {
  await system.send('tally', key, { type: 'add', id, amount: 1 });
  return 'ok';
}

async function sendAndWait(system: ActorSystem, key: string, id: string): Promise<string> {
  try {
    await system.sendAndWait('tally', key, { type: 'add', id, amount: 1 });
    return 'ok';
  } catch (err) {
    // The tally's ledger holds 500 ids; beyond that `add` is refused by its guard, after
    // being journaled, processed and committed like any other event: count it as done.
    if ((err as Error).name === 'NotAcceptedError') return 'ok';
    throw err;
  }
}

/** One `add` to every actor (bounded concurrency), so the rounds measure resident actors. */
async function createAll(system: ActorSystem): Promise<{ perSec: number; ms: number }> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: senders }, async () => {
      while (next < actors) {
        const i = next++;
        await system.send('tally', `a${i}`, { type: 'add', id: `c${i}`, amount: 1 });
      }
    }),
  );
  await system.settled();
  const ms = performance.now() - t0;
  return { perSec: Math.round(actors / (ms / 1000)), ms: Math.round(ms) };
}

async function phase(system: ActorSystem, counters: DbCounters, postmaster: number, op: (w: number, n: number) => Promise<string>): Promise<Phase> {
  const cpu = cpuMeter({ postmaster });
  let s0 = { ...system.committer.stats };
  let s1 = s0;
  let c0 = { ...counters };
  let c1 = c0;
  const res = await closedLoop({
    concurrency: senders,
    warmupMs,
    durationMs,
    op,
    window: {
      open: () => {
        cpu.open();
        s0 = { ...system.committer.stats };
        c0 = { ...counters };
      },
      close: () => {
        cpu.close();
        s1 = { ...system.committer.stats };
        c1 = { ...counters };
      },
    },
  });
  const t = performance.now();
  await system.settled();
  const flushes = s1.flushes - s0.flushes;
  return {
    ...res,
    pgCpuPct: cpu.figures().pgCpuPct!,
    machineBusyPct: cpu.figures().machineBusyPct!,
    flushesPerSec: Math.round(flushes / (durationMs / 1000)),
    appendsPerFlush: round((s1.appends - s0.appends) / Math.max(1, flushes)),
    savesPerFlush: round((s1.saves - s0.saves) / Math.max(1, flushes)),
    commitMs: round((c1.commitMs - c0.commitMs) / Math.max(1, c1.commitWrites - c0.commitWrites)),
    statementsPerFlush: round((c1.commitStatements - c0.commitStatements) / Math.max(1, flushes)),
    otherQueriesPerSec: Math.round((c1.queries - c0.queries) / (durationMs / 1000)),
    settleMs: Math.round(performance.now() - t),
  };
}

function line(p: Phase): string {
  const other = Object.entries(p.other)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  return (
    `${p.eventsPerSec} events/s, p50 ${p.latencyMs.p50} ms, p99 ${p.latencyMs.p99} ms, max ${p.latencyMs.max} ms; ` +
    `CPU % of a core: this process ${p.clientCpuPct} postgres ${p.pgCpuPct}; machine ${p.machineBusyPct}% busy; ${p.flushesPerSec} flushes/s x ${p.appendsPerFlush} appends + ${p.savesPerFlush} saves, ` +
    `${p.commitMs} ms and ${p.statementsPerFlush} statements each; ${p.otherQueriesPerSec} other queries/s; settled ${p.settleMs} ms after${other ? `; other: ${other}` : ''}`
  );
}

main().catch((err) => {
  process.stderr.write(`in-process bench failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
