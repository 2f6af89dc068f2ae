/**
 * End to end over HTTP with persistence: the real server as a child process, driven from this
 * process by a closed loop of keep-alive clients posting `tally` `add` events (202 = the event
 * is committed to the journal). Two workloads: events spread uniformly over many actors, and
 * one hot actor.
 *
 *   npx tsx bench/http.ts --db=external|embedded [--rounds=3] [--clients=50] [--actors=10000]
 *                         [--warmup-ms=2000] [--duration-ms=10000] [--cpu-prof-dir=.tmp/prof]
 *                         [--client=raw|node] [--client-sched=batch|normal]
 *
 * The load generator shares the machine's cores with the server and PostgreSQL, so each phase
 * also reports the CPU each of the three spends per event, and the rate those costs allow at
 * most if every core were busy with nothing else. By default it runs under SCHED_BATCH once the
 * server is up (bench/lib/sched.ts): remote clients would not compete with the server at all,
 * and on two cores a client that preempts the server at every answer it receives measures the
 * context switches it causes. `--client-sched=normal` measures with the default policy.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import http from 'node:http';
import { availableParallelism } from 'node:os';
import { dbKind, intArg, parseArgs } from './lib/args.ts';
import { cpuMeter } from './lib/cpu.ts';
import { benchDb, postmasterPid } from './lib/db.ts';
import { closedLoop, type LoadResult } from './lib/load.ts';
import { benchJson, log, procMemory, sleep } from './lib/report.ts';
import { httpRequester } from './lib/http-request.ts';
import { RawConnection } from './lib/raw-http.ts';
import { yieldOnWakeup, type ClientSched } from './lib/sched.ts';
import { spawnServer, type ServerProcess } from './lib/server.ts';
import { median, medianOf, round } from './lib/stats.ts';

const args = parseArgs();
const kind = dbKind(args);
const rounds = intArg(args, 'rounds', 3);
const clients = intArg(args, 'clients', 50);
const actors = intArg(args, 'actors', 10_000);
const warmupMs = intArg(args, 'warmup-ms', 2000);
const durationMs = intArg(args, 'duration-ms', 10_000);
/** Directory for a V8 CPU profile of the server (written when it exits). */
const profileDir = args.get('cpu-prof-dir');
/**
 * How the events are posted: `raw` (default) one lean keep-alive socket per client
 * (bench/lib/raw-http.ts), `node` through `node:http` with a keep-alive agent, which costs the
 * load generator about four times the CPU per request.
 */
const clientKind = args.get('client') ?? 'raw';
/**
 * Node flags for the server, after those of `npm start` (so a V8 flag given here wins), to
 * compare settings: `--server-node-args='--max-semi-space-size=16'`.
 */
const serverNodeArgs = args.get('server-node-args')?.split(/\s+/).filter(Boolean) ?? [];
if (serverNodeArgs.some((a) => !a.startsWith('-'))) throw new Error(`--server-node-args takes Node flags, as --server-node-args='--max-semi-space-size=16'`);
if (clientKind !== 'raw' && clientKind !== 'node') throw new Error(`--client must be raw or node, not ${clientKind}`);
const clientSchedArg = args.get('client-sched') ?? 'batch';
if (clientSchedArg !== 'batch' && clientSchedArg !== 'normal') throw new Error(`--client-sched must be batch or normal, not ${clientSchedArg}`);
const cores = availableParallelism();

const TARGET = { eventsPerSec: 5000, p99Ms: 50 };

interface Phase extends LoadResult {
  serverCpuPct: number;
  /** The PostgreSQL cluster (for the external server, other databases on it count too). */
  pgCpuPct: number;
  machineBusyPct: number;
  /** Group-commit transactions per second (from the server's /metrics) and events per commit. */
  commitsPerSec: number;
  eventsPerCommit: number;
  /** CPU µs per event of the load generator, the server and PostgreSQL, and their sum. */
  cpuUsPerEvent: { client: number; server: number; postgres: number; total: number };
  /** The events/s those costs allow at most with every core busy with them alone. */
  cpuCeilingPerSec: number;
}

type Client = ReturnType<typeof httpClient>;

async function main(): Promise<void> {
  const store = await benchDb({ kind, label: 'http' });
  const dataDir = `.tmp/bench-http-${process.pid}`;
  const token = `bench-${randomBytes(16).toString('hex')}`;
  let server: ServerProcess | undefined;
  let client: Client | undefined;
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  try {
    server = await spawnServer({
      extraNodeArgs: [...serverNodeArgs, ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])],
      env: {
        DATABASE_URL: store.url,
        DATA_DIR: dataDir,
        LOG_LEVEL: 'warn',
        API_TOKENS: JSON.stringify([{ token, role: 'admin', subject: 'bench' }]),
      },
    });
    const readyMs = await server.ready();
    const clientSched: ClientSched = clientSchedArg === 'batch' ? yieldOnWakeup() : 'normal';
    if (clientSched !== clientSchedArg) log(`  could not put the load generator under SCHED_BATCH (chrt): it runs with the normal policy`);
    log(`http bench on ${kind} Postgres: server pid ${server.pid} ready in ${Math.round(readyMs)} ms; ${clients} ${clientKind} clients (${clientSched === 'batch' ? 'SCHED_BATCH' : 'normal scheduling'}), ${rounds} rounds of ${warmupMs} ms warm-up + ${durationMs} ms; ${cores} cores`);
    client = httpClient(server.port, token, agent);
    const created = await createAll(client);
    log(`  first event to each of ${actors} actors: ${created.perSec} actors/s (${created.ms} ms)`);

    const pids = { server: server.pid, postmaster: await postmasterPid(store.db) };
    const spread: Phase[] = [];
    const hot: Phase[] = [];
    const hotCatchUpMs: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const s = await phase(client, pids, (w, n) => client!.add(w, `a${Math.floor(Math.random() * actors)}`, `r${r}w${w}n${n}`));
      spread.push(s);
      log(`  round ${r + 1} spread: ${line(s)}`);
      await sleep(500); // let the server finish processing what the window appended
      const h = await phase(client, pids, (w, n) => client!.add(w, 'hot', `r${r}w${w}n${n}`));
      hot.push(h);
      const lag = await client.catchUp('hot');
      hotCatchUpMs.push(lag);
      const heap = await client.heap();
      log(`  round ${r + 1} hot:    ${line(h)}; processing caught up ${lag} ms after the window`);
      log(`  server after round ${r + 1}: RSS ${procMemory(server.pid).rssMb} MiB, V8 heap in use ${heap.heapUsedMb} MiB, ${heap.resident} actors resident`);
    }
    const mem = procMemory(server.pid);
    const heap = await client.heap();
    const result = {
      bench: 'http',
      db: kind,
      clients,
      client: clientKind,
      clientSched,
      cores,
      actors,
      rounds,
      warmupMs,
      durationMs,
      createActorsPerSec: created.perSec,
      spread: medianOf(spread),
      hot: { ...medianOf(hot), catchUpMs: median(hotCatchUpMs) },
      serverRssMb: mem.rssMb,
      serverHeapUsedMb: heap.heapUsedMb,
      serverPeakRssMb: mem.peakRssMb,
      target: TARGET,
      meetsTarget: false,
    };
    result.meetsTarget = result.spread.eventsPerSec >= TARGET.eventsPerSec && result.spread.latencyMs.p99 < TARGET.p99Ms;
    log(`median spread (${actors} actors): ${line(result.spread)}`);
    log(`median hot (1 actor):           ${line(result.hot)}`);
    log(`server RSS at end ${mem.rssMb} MiB (peak ${mem.peakRssMb} MiB, V8 heap in use ${heap.heapUsedMb} MiB); target >= ${TARGET.eventsPerSec}/s spread with p99 < ${TARGET.p99Ms} ms: ${result.meetsTarget ? 'met' : 'NOT met'}`);
    benchJson(result);
  } finally {
    client?.close();
    agent.destroy();
    if (server) {
      const stopped = await server.stop();
      if (stopped.code !== 0) log(`server exited with ${stopped.code}:\n${server.output().slice(-2000)}`);
    }
    rmSync(dataDir, { recursive: true, force: true });
    await store.cleanup();
  }
}

/** One `add` to every actor, so the rounds measure resident actors, not their creation. */
async function createAll(client: Client): Promise<{ perSec: number; ms: number }> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, w) => {
      while (next < actors) {
        const i = next++;
        const outcome = await client.add(w, `a${i}`, `c${i}`);
        if (outcome !== 'ok') throw new Error(`creating a${i}: ${outcome}`);
      }
    }),
  );
  const ms = performance.now() - t0;
  await sleep(1000); // let processing of the last ones finish
  return { perSec: Math.round(actors / (ms / 1000)), ms: Math.round(ms) };
}

async function phase(client: Client, pids: { server: number; postmaster: number }, op: (w: number, n: number) => Promise<string>): Promise<Phase> {
  const cpu = cpuMeter({ pids: { server: pids.server }, postmaster: pids.postmaster });
  let c0: Promise<number> = Promise.resolve(NaN);
  let c1: Promise<number> = Promise.resolve(NaN);
  const res = await closedLoop({
    concurrency: clients,
    warmupMs,
    durationMs,
    op,
    window: {
      open: () => {
        cpu.open();
        c0 = client.commits();
      },
      close: () => {
        cpu.close();
        c1 = client.commits();
      },
    },
  });
  const commits = (await c1) - (await c0);
  const f = cpu.figures();
  // CPU % of a core at this rate → CPU µs per event.
  const perEvent = (pct: number) => Math.round((pct * 10_000) / Math.max(1, res.eventsPerSec));
  return {
    ...res,
    serverCpuPct: f.serverCpuPct!,
    pgCpuPct: f.pgCpuPct!,
    machineBusyPct: f.machineBusyPct!,
    commitsPerSec: Math.round(commits / (durationMs / 1000)),
    eventsPerCommit: round(res.ok / Math.max(1, commits)),
    cpuUsPerEvent: { client: perEvent(res.clientCpuPct), server: perEvent(f.serverCpuPct!), postgres: perEvent(f.pgCpuPct!), total: perEvent(res.clientCpuPct + f.serverCpuPct! + f.pgCpuPct!) },
    cpuCeilingPerSec: Math.round((cores * 100) / ((res.clientCpuPct + f.serverCpuPct! + f.pgCpuPct!) / Math.max(1, res.eventsPerSec))),
  };
}

function line(p: Phase): string {
  const other = Object.entries(p.other)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  return (
    `${p.eventsPerSec} events/s, p50 ${p.latencyMs.p50} ms, p99 ${p.latencyMs.p99} ms, max ${p.latencyMs.max} ms; ` +
    `${p.commitsPerSec} commits/s x ${p.eventsPerCommit} events; ` +
    `CPU % of a core: client ${p.clientCpuPct} server ${p.serverCpuPct} postgres ${p.pgCpuPct}; machine ${p.machineBusyPct}% busy${other ? `; other: ${other}` : ''}; ` +
    `CPU µs per event: client ${p.cpuUsPerEvent.client} server ${p.cpuUsPerEvent.server} postgres ${p.cpuUsPerEvent.postgres}, so at most ${p.cpuCeilingPerSec} events/s on ${cores} cores`
  );
}

function metric({ status, text }: { status: number; text: string }, name: string): number {
  const m = status === 200 ? new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+]+)`, 'm').exec(text) : null;
  return m ? Number(m[1]) : NaN;
}

function httpClient(port: number, token: string, agent: http.Agent) {
  const request = httpRequester(port, agent, { authorization: `Bearer ${token}` });
  const raw: (RawConnection | undefined)[] | undefined = clientKind === 'raw' ? [] : undefined;
  return {
    /** Posts one `add` on client `w`'s own connection. */
    async add(w: number, key: string, id: string): Promise<string> {
      const path = `/actors/tally/${key}/events`;
      const body = JSON.stringify({ type: 'add', id, amount: 1 });
      const status = raw ? await (raw[w] ??= new RawConnection(port, [`authorization: Bearer ${token}`])).request('POST', path, body) : (await request('POST', path, body)).status;
      return status === 202 ? 'ok' : `http ${status}`;
    },
    close(): void {
      for (const c of raw ?? []) c?.close();
    },
    /** The server's group-commit transaction count so far (NaN when /metrics is missing). */
    async commits(): Promise<number> {
      return metric(await request('GET', '/metrics'), 'actor_group_commits_total');
    },
    /** The server's V8 heap in use and its resident actors, from /metrics. */
    async heap(): Promise<{ heapUsedMb: number; resident: number }> {
      const res = await request('GET', '/metrics');
      return { heapUsedMb: Math.round(metric(res, 'nodejs_heap_size_used_bytes') / 2 ** 20), resident: metric(res, 'actors_resident') };
    },
    /** Polls the actor until everything appended is processed; ms it took. */
    async catchUp(key: string): Promise<number> {
      const t0 = performance.now();
      for (let i = 0; i < 3000; i++) {
        const { status, text } = await request('GET', `/actors/tally/${key}`);
        if (status !== 200) throw new Error(`GET /actors/tally/${key}: ${status} ${text}`);
        const v = JSON.parse(text) as { processedSeq: number; lastSeq: number };
        if (v.processedSeq >= v.lastSeq) return round(performance.now() - t0, 0);
        await sleep(10);
      }
      return -1;
    },
  };
}

main().catch((err) => {
  process.stderr.write(`http bench failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
