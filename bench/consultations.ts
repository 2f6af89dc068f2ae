/**
 * Referrals and consultations over HTTP against the real server (a child process, as `npm start`
 * runs it, with a comms simulator in this process): (a) webhook intake, signed referrals posted
 * by concurrent clients (signature check, validation, encryption, user lookup or creation and the
 * booking's creation all included; each referral a new person); (b) full lifecycles through the
 * API, each client running webhook → screening → consultation → pickup → start → complete with
 * a result, back to back (7 requests per lifecycle).
 *
 *   npx tsx bench/consultations.ts --db=external|embedded [--clients=20] [--warmup-ms=2000]
 *                                  [--duration-ms=10000] [--rounds=3]
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import http from 'node:http';
import { startCommsSimulator } from '../integrations/comms/simulator.ts';
import { makeReferral, mulberry32, signedRequest } from '../integrations/pridok/simulator.ts';
import { dbKind, intArg, parseArgs } from './lib/args.ts';
import { cpuMeter } from './lib/cpu.ts';
import { benchDb, postmasterPid } from './lib/db.ts';
import { closedLoop, type LoadResult } from './lib/load.ts';
import { benchJson, log, procMemory } from './lib/report.ts';
import { httpRequester } from './lib/http-request.ts';
import { spawnServer, type ServerProcess } from './lib/server.ts';
import { medianOf } from './lib/stats.ts';

const args = parseArgs();
const kind = dbKind(args);
const clients = intArg(args, 'clients', 20);
const rounds = intArg(args, 'rounds', 3);
const warmupMs = intArg(args, 'warmup-ms', 2000);
const durationMs = intArg(args, 'duration-ms', 10_000);

const SECRET = `bench-${randomBytes(16).toString('hex')}`;
const RESULT = { icpc2: 'R74', outcome: 'helped', notes: 'bench' };

interface Phase extends LoadResult {
  serverCpuPct: number;
  pgCpuPct: number;
  machineBusyPct: number;
}

async function main(): Promise<void> {
  const store = await benchDb({ kind, label: 'consult' });
  const comms = await startCommsSimulator({});
  const dataDir = `.tmp/bench-consult-${process.pid}`;
  const tokens = { secretary: `sec-${randomBytes(12).toString('hex')}`, doctor: `doc-${randomBytes(12).toString('hex')}` };
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients * 2 });
  let server: ServerProcess | undefined;
  try {
    server = await spawnServer({
      env: {
        DATABASE_URL: store.url,
        DATA_DIR: dataDir,
        LOG_LEVEL: 'warn',
        PRIDOK_WEBHOOK_SECRET: SECRET,
        COMMS_URL: comms.url,
        API_TOKENS: JSON.stringify([
          { token: tokens.secretary, role: 'secretary', subject: 'sec-bench' },
          { token: tokens.doctor, role: 'doctor', subject: 'dr-bench' },
        ]),
      },
    });
    await server.ready();
    const pids = { server: server.pid, postmaster: await postmasterPid(store.db) };
    const call = httpRequester(server.port, agent);
    const random = mulberry32(7);
    log(`consultations bench on ${kind} Postgres: ${clients} clients, ${rounds} rounds of ${warmupMs} ms warm-up + ${durationMs} ms`);

    const refer = async (): Promise<{ status: number; bookingId?: string }> => {
      const referral = makeReferral(random, {}, Date.now());
      const signed = signedRequest(SECRET, referral, Math.floor(Date.now() / 1000));
      const res = await call('POST', '/webhooks/pridok/referrals', signed.body, signed.headers);
      return { status: res.status, bookingId: res.status === 201 ? (JSON.parse(res.text) as { bookingId: string }).bookingId : undefined };
    };
    const lifecycle = async (): Promise<string> => {
      const r = await refer();
      if (r.status !== 201) return `webhook ${r.status}`;
      const sec = { authorization: `Bearer ${tokens.secretary}` };
      const doc = { authorization: `Bearer ${tokens.doctor}` };
      let res = await call('POST', `/bookings/${r.bookingId}/screenings`, JSON.stringify({ reached: true }), sec);
      if (res.status !== 200) return `screening ${res.status}`;
      res = await call('POST', `/bookings/${r.bookingId}/consultation`, undefined, sec);
      if (res.status !== 201) return `consultation ${res.status}`;
      const id = (JSON.parse(res.text) as { consultationId: string }).consultationId;
      for (const step of ['pickup', 'start']) {
        res = await call('POST', `/consultations/${id}/${step}`, undefined, doc);
        if (res.status !== 200) return `${step} ${res.status}`;
      }
      res = await call('POST', `/consultations/${id}/complete`, JSON.stringify({ result: RESULT }), doc);
      return res.status === 200 ? 'ok' : `complete ${res.status}`;
    };

    const intake: Phase[] = [];
    const lifecycles: Phase[] = [];
    for (let round = 0; round < rounds; round++) {
      intake.push(await phase(pids, async () => {
        const r = await refer();
        return r.status === 201 ? 'ok' : `http ${r.status}`;
      }));
      log(`  round ${round + 1} webhook intake: ${line(intake.at(-1)!, 'referrals')}`);
      lifecycles.push(await phase(pids, lifecycle));
      log(`  round ${round + 1} full lifecycles: ${line(lifecycles.at(-1)!, 'lifecycles')}`);
    }
    const mem = procMemory(server.pid);
    const result = { bench: 'consultations', db: kind, clients, rounds, warmupMs, durationMs, intake: medianOf(intake), lifecycles: medianOf(lifecycles), linksSent: comms.stats.messages.length, serverRssMb: mem.rssMb, serverPeakRssMb: mem.peakRssMb };
    log(`median webhook intake: ${line(result.intake, 'referrals')}`);
    log(`median full lifecycles: ${line(result.lifecycles, 'lifecycles')}`);
    log(`links mailed by the comms simulator: ${result.linksSent}; server RSS ${mem.rssMb} MiB (peak ${mem.peakRssMb} MiB)`);
    benchJson(result);
  } finally {
    agent.destroy();
    if (server) {
      const stopped = await server.stop();
      if (stopped.code !== 0) log(`server exited with ${stopped.code}:\n${server.output().slice(-2000)}`);
    }
    await comms.close();
    rmSync(dataDir, { recursive: true, force: true });
    await store.cleanup();
  }
}

async function phase(pids: { server: number; postmaster: number }, op: () => Promise<string>): Promise<Phase> {
  const cpu = cpuMeter({ pids: { server: pids.server }, postmaster: pids.postmaster });
  const res = await closedLoop({ concurrency: clients, warmupMs, durationMs, op: () => op(), window: cpu });
  const f = cpu.figures();
  return { ...res, serverCpuPct: f.serverCpuPct!, pgCpuPct: f.pgCpuPct!, machineBusyPct: f.machineBusyPct! };
}

function line(p: Phase, what: string): string {
  const other = Object.entries(p.other)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  return `${p.eventsPerSec} ${what}/s, p50 ${p.latencyMs.p50} ms, p99 ${p.latencyMs.p99} ms, max ${p.latencyMs.max} ms; CPU % of a core: client ${p.clientCpuPct} server ${p.serverCpuPct} postgres ${p.pgCpuPct}; machine ${p.machineBusyPct}% busy${other ? `; other: ${other}` : ''}`;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
