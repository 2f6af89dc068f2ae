/**
 * Runs every bench in sequence, each in its own process, on both databases where that means
 * something (startup is embedded only), and prints one table of their medians.
 *
 *   npm run bench                      # everything, full size (about 40 minutes)
 *   npm run bench -- --quick           # 1 round, short windows, 10,000 timers (a few minutes)
 *   npm run bench -- --only=http,startup --db=external
 */
import { parseArgs } from './lib/args.ts';
import { runBench } from './lib/child.ts';
import { benchJson, log } from './lib/report.ts';

const args = parseArgs();
const quick = args.has('quick');
const only = args.get('only')?.split(',');
const dbs = args.has('db') ? [args.get('db')!] : ['external', 'embedded'];

type Json = Record<string, any>;

const short = quick ? ['--rounds=1', '--warmup-ms=1000', '--duration-ms=4000'] : [];
const benches: { name: string; dbs: string[]; args: string[]; nodeArgs?: string[] }[] = [
  { name: 'http', dbs, args: short },
  { name: 'inprocess', dbs, args: short },
  { name: 'timers', dbs, args: quick ? ['--count=10000', '--window-ms=20000'] : [] },
  { name: 'memory', dbs, args: [], nodeArgs: ['--expose-gc'] },
  { name: 'startup', dbs: ['embedded'], args: quick ? ['--rounds=1'] : [] },
  { name: 'insurer', dbs, args: quick ? ['--patients=1000'] : [] },
  { name: 'pims', dbs, args: quick ? ['--visits=2000'] : [] },
  { name: 'consultations', dbs, args: short },
];

async function main(): Promise<void> {
  const results: Json[] = [];
  const failures: string[] = [];
  const t0 = performance.now();
  for (const b of benches) {
    if (only && !only.includes(b.name)) continue;
    for (const db of b.dbs) {
      if (!dbs.includes(db)) continue;
      log(`\n== ${b.name} --db=${db} ${b.args.join(' ')}`);
      try {
        results.push(await runBench(`bench/${b.name}.ts`, [`--db=${db}`, ...b.args], { nodeArgs: b.nodeArgs ?? [] }));
      } catch (err) {
        failures.push((err as Error).message);
        log(`  FAILED: ${(err as Error).message}`);
      }
    }
  }
  log(`\n== summary (medians; ${Math.round((performance.now() - t0) / 1000)} s in all)`);
  for (const row of table(results)) log(row);
  for (const f of failures) log(`FAILED: ${f}`);
  benchJson({ bench: 'all', results, failures });
  if (failures.length) process.exitCode = 1;
}

function table(results: Json[]): string[] {
  const rows: [string, string, string][] = [];
  const lat = (l: Json) => `p50 ${l.p50} / p99 ${l.p99} / max ${l.max} ms`;
  for (const r of results) {
    const at = `${r.bench} ${r.db}`;
    if (r.bench === 'http') {
      rows.push([at, `spread over ${r.actors} actors`, `${r.spread.eventsPerSec}/s, ${lat(r.spread.latencyMs)}; CPU server ${r.spread.serverCpuPct}% client ${r.spread.clientCpuPct}% pg ${r.spread.pgCpuPct}%`]);
      rows.push([at, 'one hot actor', `${r.hot.eventsPerSec}/s, ${lat(r.hot.latencyMs)}`]);
      rows.push([at, 'first event per actor', `${r.createActorsPerSec} actors/s`]);
      rows.push([at, 'server RSS at end', `${r.serverRssMb} MiB; target ${r.target.eventsPerSec}/s p99 < ${r.target.p99Ms} ms: ${r.meetsTarget ? 'met' : 'NOT met'}`]);
    } else if (r.bench === 'inprocess') {
      for (const k of ['spreadSend', 'hotSend', 'spreadWait', 'hotWait']) rows.push([at, k, `${r[k].eventsPerSec}/s, ${lat(r[k].latencyMs)}`]);
      rows.push([at, 'first event per actor', `${r.createActorsPerSec} actors/s`]);
    } else if (r.bench === 'timers') {
      for (const m of ['resident', 'passivated']) {
        const x = r[m];
        rows.push([at, `${m}, ${x.count} timers`, `lateness ${lat(x.latenessMs)}; fired ${x.fired}; arming ${x.armPerSec}/s; peak RSS ${x.peakRssMb} MiB`]);
      }
    } else if (r.bench === 'memory') {
      rows.push([at, `heap per actor (${r.count})`, `resident ${r.runtimeBytesPerResidentActor} B, passivated ${r.runtimeBytesPerPassivatedActor} B; XState alone ${r.xstateBytesPerStartedActor} B`]);
    } else if (r.bench === 'insurer') {
      for (const l of ['redis', 'postgres']) {
        const x = r[l];
        if (!x) continue;
        rows.push([at, `line on ${l}, ${r.patients} patients`, `utilisation ours ${x.ours.utilisation} / bare ${x.bare.utilisation} = ${x.utilisationRatio} (target ≥ ${x.target.utilisationRatio}); wall ${Math.round(x.ours.wallMs / 1000)} s vs bare ${Math.round(x.bare.wallMs / 1000)} s`]);
        rows.push([at, `  single-sync ack, RSS`, `${lat(x.ours.ackMs)}; max in flight ${x.ours.maxInFlight}; peak RSS ${x.ours.peakRssMb} MiB; ${x.meetsTarget ? 'targets met' : 'targets NOT met'}`]);
      }
    } else if (r.bench === 'pims') {
      rows.push([at, `${r.visits} visits, max age ${r.maxAgeMs / 1000} s`, `refresh lateness ${lat(r.latenessMs)}; requests per refresh ${r.requestsPerRefresh.mean} (max ${r.requestsPerRefresh.max}); idle CPU ${r.idle?.cpuPct ?? '-'}%, RSS ${r.idle?.rssMb ?? '-'} MiB; ${r.meetsTarget ? 'targets met' : 'targets NOT met'}`]);
      rows.push([at, `  restart, ${r.restart.overdue} overdue`, `up ${r.restart.upMs} ms, first refresh ${r.restart.firstRefreshMs} ms, caught up ${r.restart.caughtUpMs} ms`]);
      for (const a of r.ages) rows.push([at, `  age asked, ${a.visits} visits`, `old p50 ${Math.round(a.oldMs.p50 / 1000)} s / max ${Math.round(a.oldMs.max / 1000)} s; ours p50 ${Math.round(a.oursMs.p50 / 1000)} s / max ${Math.round(a.oursMs.max / 1000)} s`]);
    } else if (r.bench === 'consultations') {
      rows.push([at, 'webhook intake', `${r.intake.eventsPerSec} referrals/s, ${lat(r.intake.latencyMs)}`]);
      rows.push([at, 'full lifecycles (7 requests)', `${r.lifecycles.eventsPerSec} lifecycles/s, ${lat(r.lifecycles.latencyMs)}`]);
    } else if (r.bench === 'startup') {
      rows.push([at, 'to first 200 /readyz', `cold ${r.coldReadyMs} ms, warm ${r.warmReadyMs} ms, npm start cold ${r.npmStartColdReadyMs} ms; stop ${r.stopMs} ms`]);
    }
  }
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`);
}

main().catch((err) => {
  process.stderr.write(`bench run failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
