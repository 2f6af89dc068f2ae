/**
 * Cold and warm start of the server on the embedded PostgreSQL: spawn exactly what `npm start`
 * runs (its command line, read from package.json) with an empty DATA_DIR and no DATABASE_URL, time the
 * first 200 from GET /readyz, stop it with SIGTERM, then start again on the same DATA_DIR.
 * Also times `npm start` itself once (cold), for the cost of npm and the tsx launcher.
 *
 *   npx tsx bench/startup.ts [--rounds=3]
 */
import { rmSync } from 'node:fs';
import { intArg, parseArgs } from './lib/args.ts';
import { benchJson, log } from './lib/report.ts';
import { spawnServer } from './lib/server.ts';
import { median } from './lib/stats.ts';

const args = parseArgs();
if (args.has('db') && args.get('db') !== 'embedded') throw new Error('startup measures the embedded PostgreSQL only (--db=embedded)');
const rounds = intArg(args, 'rounds', 3);
const TARGET_COLD_MS = 5000;

interface Start {
  readyMs: number;
  /** What the server logged as its own startup time (after its imports were loaded). */
  loggedStartupMs: number;
  stopMs: number;
  stopCode: number | null;
  /** The server logged its last shutdown line ('stopped'). */
  loggedStopped: boolean;
}

async function once(dataDir: string, npm = false): Promise<Start> {
  const server = await spawnServer({
    env: { DATA_DIR: dataDir, LOG_LEVEL: 'info' },
    ...(npm ? { command: 'npm', args: ['start', '--silent'], group: true } : {}),
  });
  try {
    const readyMs = await server.ready();
    const m = /"startupMs":(\d+)/.exec(server.output());
    // `npm start` is stopped as a terminal does it: SIGINT to its process group. The server
    // itself gets SIGTERM, as from a process manager or `docker stop`.
    const stopped = await server.stop(npm ? 'SIGINT' : 'SIGTERM');
    return {
      readyMs: Math.round(readyMs),
      loggedStartupMs: m ? Number(m[1]) : NaN,
      stopMs: Math.round(stopped.ms),
      stopCode: stopped.code,
      loggedStopped: /"msg":"stopped"/.test(server.output()),
    };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

async function main(): Promise<void> {
  log(`startup bench: embedded PostgreSQL, ${rounds} rounds of cold + warm start`);
  const cold: Start[] = [];
  const warm: Start[] = [];
  for (let r = 0; r < rounds; r++) {
    const dir = `.tmp/bench-startup-${process.pid}-${r}`;
    rmSync(dir, { recursive: true, force: true });
    try {
      const c = await once(dir);
      const w = await once(dir);
      cold.push(c);
      warm.push(w);
      log(`  round ${r + 1}: cold ${c.readyMs} ms (server logged ${c.loggedStartupMs} ms), warm ${w.readyMs} ms (logged ${w.loggedStartupMs} ms); SIGTERM to exit ${c.stopMs} / ${w.stopMs} ms`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const npmDir = `.tmp/bench-startup-${process.pid}-npm`;
  rmSync(npmDir, { recursive: true, force: true });
  let npm: Start;
  try {
    npm = await once(npmDir, true);
  } finally {
    rmSync(npmDir, { recursive: true, force: true });
  }
  log(`  npm start, cold: ${npm.readyMs} ms to ready; Ctrl-C (SIGINT to the group) to exit ${npm.stopMs} ms (server logged 'stopped': ${npm.loggedStopped})`);

  const med = (xs: Start[], k: keyof Start) => Math.round(median(xs.map((x) => x[k] as number)));
  const result = {
    bench: 'startup',
    db: 'embedded',
    rounds,
    coldReadyMs: med(cold, 'readyMs'),
    coldLoggedStartupMs: med(cold, 'loggedStartupMs'),
    warmReadyMs: med(warm, 'readyMs'),
    warmLoggedStartupMs: med(warm, 'loggedStartupMs'),
    stopMs: med([...cold, ...warm], 'stopMs'),
    cleanExits: [...cold, ...warm].every((s) => s.stopCode === 0 && s.loggedStopped),
    npmStartColdReadyMs: npm.readyMs,
    npmStartCleanExit: npm.loggedStopped,
    targetColdMs: TARGET_COLD_MS,
    meetsTarget: med(cold, 'readyMs') < TARGET_COLD_MS,
  };
  log(`median: cold ${result.coldReadyMs} ms, warm ${result.warmReadyMs} ms to the first 200 from /readyz; stop ${result.stopMs} ms; target cold < ${TARGET_COLD_MS} ms: ${result.meetsTarget ? 'met' : 'NOT met'}`);
  benchJson(result);
}

main().catch((err) => {
  process.stderr.write(`startup bench failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
