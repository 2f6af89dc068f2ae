import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkListen } from '../../http/listen.ts';
import { embeddedConnectionString, stopOrphan } from '../../storage/embedded.ts';
import { createFreshDatabase } from './pgdb.ts';
import { startCommand } from './start-command.ts';

/**
 * The real server (as `npm start` runs it) as a child process, for tests where a
 * crash or a restart is the point. Every child is tracked so `killAllServers()` in an
 * afterEach leaves nothing behind when a test fails half way.
 */

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Where a server keeps its data: a database on an existing server, or an embedded cluster. */
export type Storage = { kind: 'external'; databaseUrl: string } | { kind: 'embedded'; dataDir: string };

export interface TestStorage {
  storage: Storage;
  /** Drops the database, or stops a leftover embedded postgres and removes the directory. */
  cleanup(): Promise<void>;
}

/** A fresh, empty storage: a new database on `serverUrl`, or a new DATA_DIR under `.tmp/`. */
export async function freshStorage(kind: Storage['kind'], serverUrl?: string): Promise<TestStorage> {
  if (kind === 'external') {
    if (!serverUrl) throw new Error('external storage needs a server URL');
    const db = await createFreshDatabase(serverUrl);
    return { storage: { kind, databaseUrl: db.url }, cleanup: () => db.drop() };
  }
  const dataDir = path.join(repoRoot, '.tmp', `e2e-${process.pid}-${randomBytes(4).toString('hex')}`);
  return {
    storage: { kind, dataDir },
    async cleanup() {
      // A SIGKILLed server leaves its embedded postgres running: stop it, as a next start would.
      await stopOrphan(path.join(dataDir, 'pg'), { waitMs: 15_000, orKill: true });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface RunningServer {
  url: string;
  /** An admin bearer token. */
  token: string;
  pid: number;
  /** Epoch ms when the process was spawned, and when /readyz first answered 200. */
  spawnedAt: number;
  readyAt: number;
  /** The last part of the child's stdout and stderr, for failure messages. */
  output(): string;
  /** Sends `signal` and resolves once the process has exited (SIGKILL simulates a crash). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Graceful stop (SIGTERM); resolves with the exit code. */
  stop(): Promise<number | null>;
  /**
   * Sends `signal` to the server's whole process group, as Ctrl-C in a terminal does (needs
   * `ownGroup`), and resolves with the exit code once the process has exited.
   */
  signalGroup(signal: NodeJS.Signals): Promise<number | null>;
  /** fetch against the server with the admin token. */
  fetch(route: string, init?: RequestInit): Promise<Response>;
}

const live = new Set<ChildProcess>();
const ADMIN_TOKEN = `e2e-admin-${randomBytes(12).toString('hex')}`;

export interface StartOptions {
  env?: Record<string, string>;
  readyTimeoutMs?: number;
  /** Runs the server as the leader of a process group of its own, as a shell runs a job. */
  ownGroup?: boolean;
}

export async function startServer(storage: Storage, opts: StartOptions = {}): Promise<RunningServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServerOn(await freePort(), storage, opts);
    } catch (err) {
      // Another test's server chose the same port in the moment before this one bound it.
      if (attempt >= 3 || !(err as Error).message.includes('EADDRINUSE')) throw err;
    }
  }
}

async function startServerOn(port: number, storage: Storage, { env = {}, readyTimeoutMs = 60_000, ownGroup = false }: StartOptions): Promise<RunningServer> {
  const spawnedAt = Date.now();
  const child = spawnApp(
    {
      PORT: String(port),
      API_TOKENS: JSON.stringify([{ token: ADMIN_TOKEN, role: 'admin', subject: 'e2e' }]),
      ...(storage.kind === 'external' ? { DATABASE_URL: storage.databaseUrl } : { DATA_DIR: storage.dataDir }),
      ...env,
    },
    ownGroup,
  );
  live.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => live.delete(child));
  let output = '';
  const capture = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-32_000);
  };
  child.stdout!.on('data', capture);
  child.stderr!.on('data', capture);
  const isDown = () => child.exitCode !== null || child.signalCode !== null;
  const describe = () => `server pid ${child.pid} (exit ${child.exitCode ?? child.signalCode}); output:\n${output || '(none)'}`;

  /** Sends `signal` to the server (or its whole group) and waits for it to exit, SIGKILLing it after 30 s. */
  async function kill(signal: NodeJS.Signals = 'SIGKILL', group = false): Promise<void> {
    if (isDown()) return;
    if (group) process.kill(-child.pid!, signal);
    else child.kill(signal);
    if (await within(exited, 30_000)) return;
    child.kill('SIGKILL');
    await exited;
    throw new Error(`server did not exit on ${signal}${group ? ' to its group' : ''} within 30 s; killed. ${describe()}`);
  }

  const url = `http://127.0.0.1:${port}`;
  const readyAt = await waitReady(url, readyTimeoutMs, isDown).catch(async (err: Error) => {
    await kill('SIGKILL').catch(() => {});
    throw new Error(`${err.message}; ${describe()}`);
  });

  return {
    url,
    token: ADMIN_TOKEN,
    pid: child.pid!,
    spawnedAt,
    readyAt,
    output: () => output,
    kill,
    async stop() {
      await kill('SIGTERM');
      return child.exitCode;
    },
    async signalGroup(signal) {
      if (!ownGroup) throw new Error('signalGroup needs a server started with ownGroup');
      await kill(signal, true);
      return child.exitCode;
    },
    fetch(route, init = {}) {
      const headers = new Headers(init.headers);
      headers.set('authorization', `Bearer ${ADMIN_TOKEN}`);
      if (init.body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
      return fetch(url + route, { ...init, headers });
    },
  };
}

/**
 * Spawns the server as `npm start` runs it, on 127.0.0.1 with warnings only, configured by `env`
 * alone: none of the storage, token or port settings of this process leak into it. Its stdout
 * and stderr are piped; `detached` makes it the leader of a process group of its own.
 */
export function spawnApp(env: Record<string, string>, detached = false): ChildProcess {
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'DATA_DIR', 'API_TOKENS', 'PORT', 'HOST']) delete childEnv[name];
  Object.assign(childEnv, { HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env });
  const { nodeArgs, script } = startCommand();
  return spawn(process.execPath, [...nodeArgs, script], { cwd: repoRoot, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], detached });
}

/** SIGKILLs every server child still running (afterEach: a failed test must leave none). */
export async function killAllServers(): Promise<void> {
  await Promise.all(
    [...live].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await within(exited, 10_000);
    }),
  );
}

/** The connection URL of the embedded postgres a server runs on `dataDir`, as the server reaches it (from postmaster.pid: port, socket directory). */
export function embeddedUrl(dataDir: string): string {
  const lines = readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n');
  return embeddedConnectionString(Number(lines[3]), lines[4] || undefined);
}

async function waitReady(url: string, timeoutMs: number, isDown: () => boolean): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (isDown()) throw new Error(`server exited before it was ready`);
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return Date.now();
      last = `readyz ${res.status}`;
      await res.body?.cancel();
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`server not ready within ${timeoutMs} ms (last: ${last})`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function within(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  const done = await Promise.race([p.then(() => true), timeout]);
  clearTimeout(timer);
  return done;
}

/**
 * A free port below the kernel's ephemeral range. A port the kernel hands out for `listen(0)` is
 * in that range, where it can be handed out again (to the embedded PostgreSQL a server starts
 * before it binds its own port, to any outgoing connection) between being chosen here and being
 * bound by the server; ports below it are never handed out that way.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * (low - 10_000));
    if ((await checkListen(port, '127.0.0.1')) === undefined) return port;
  }
}

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return low > 11_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}
