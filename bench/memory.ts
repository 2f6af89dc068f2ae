/**
 * Heap bytes per actor: resident (after one `add` each), passivated (evicted by the
 * housekeeper after the idle timeout, driven by a ManualClock), and plain XState actors of the
 * same machine without the runtime, for comparison. Needs `--expose-gc`:
 *
 *   node --expose-gc --import tsx bench/memory.ts --db=external|embedded [--count=20000]
 */
import { createActor } from 'xstate';
import { ManualClock } from '../actors/clock.ts';
import { ActorSystem } from '../actors/system.ts';
import { tallyType } from '../http/modules/demo.ts';
import { tallyMachine } from '../machines/tally.ts';
import { dbKind, intArg, parseArgs } from './lib/args.ts';
import { benchDb } from './lib/db.ts';
import { benchJson, log } from './lib/report.ts';

const args = parseArgs();
const kind = dbKind(args);
const count = intArg(args, 'count', 20_000);
const concurrency = intArg(args, 'concurrency', 200);
const IDLE_MS = 60_000;
const TARGET = { runtimeBytesPerActor: 8 * 1024, xstateBytesPerActor: 3.5 * 1024 };

const gc = (globalThis as { gc?: () => void }).gc;

async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc!();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}

async function main(): Promise<void> {
  if (!gc) throw new Error('run with node --expose-gc --import tsx bench/memory.ts');
  const store = await benchDb({ kind, label: 'memory' });
  const clock = new ManualClock(Date.now());
  const system = new ActorSystem({ db: store.db, clock });
  system.register(tallyType({ idleTimeoutMs: IDLE_MS }));
  clock.settle = () => system.settled();
  await system.start();
  try {
    log(`memory bench on ${kind} Postgres: ${count} tally actors`);
    // Warm up code paths, pool connections and caches, then evict, so the baseline has them.
    await addToEach(system, 'w', 500);
    await clock.advance(IDLE_MS + 3000);
    const base = await heapAfterGc();

    await addToEach(system, 'a', count);
    const resident = system.residentCount;
    const afterResident = await heapAfterGc();
    await clock.advance(IDLE_MS + 3000);
    const passivatedCount = system.residentCount;
    const afterPassivated = await heapAfterGc();

    const { rows } = await store.db.query<{ bytes: number }>(`SELECT avg(octet_length(snapshot::text))::int AS bytes FROM actors WHERE type = 'tally' AND key LIKE 'a%'`);
    const xs = await xstateAlone();

    const result = {
      bench: 'memory',
      db: kind,
      count,
      residentActors: resident.activations,
      runtimeBytesPerResidentActor: Math.round((afterResident - base) / count),
      runtimeBytesPerPassivatedActor: Math.round((afterPassivated - base) / count),
      residentAfterPassivation: passivatedCount.entries,
      snapshotJsonBytes: rows[0]!.bytes,
      xstateBytesPerStartedActor: xs.started,
      xstateBytesPerActorAfterOneAdd: xs.afterAdd,
      target: TARGET,
      meetsTarget: (afterResident - base) / count < TARGET.runtimeBytesPerActor,
    };
    log(`  runtime, resident:   ${result.runtimeBytesPerResidentActor} bytes/actor (${resident.activations} activations held)`);
    log(`  runtime, passivated: ${result.runtimeBytesPerPassivatedActor} bytes/actor (${passivatedCount.entries} entries left)`);
    log(`  XState alone: ${xs.started} bytes/actor started, ${xs.afterAdd} bytes/actor after one add`);
    log(`  persisted snapshot of one actor: ${result.snapshotJsonBytes} bytes of JSON`);
    benchJson(result);
  } finally {
    await system.stop();
    await store.cleanup();
  }
}

async function addToEach(system: ActorSystem, prefix: string, n: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        await system.send('tally', `${prefix}${i}`, { type: 'add', id: `e${i}`, amount: 1 });
      }
    }),
  );
  await system.settled();
}

/** Heap per `createActor(tallyMachine, { input: undefined }).start()` held in an array, then after one `add` each. */
async function xstateAlone(): Promise<{ started: number; afterAdd: number }> {
  const warm = Array.from({ length: 200 }, () => createActor(tallyMachine, { input: undefined }).start());
  for (const a of warm) a.stop();
  const base = await heapAfterGc();
  const actors = Array.from({ length: count }, () => createActor(tallyMachine, { input: undefined }).start());
  const started = await heapAfterGc();
  actors.forEach((a, i) => a.send({ type: 'add', id: `e${i}`, amount: 1 }));
  const added = await heapAfterGc();
  const out = { started: Math.round((started - base) / count), afterAdd: Math.round((added - base) / count) };
  for (const a of actors) a.stop();
  return out;
}

main().catch((err) => {
  process.stderr.write(`memory bench failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
