import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { createServer } from 'node:net';
import { startCommand } from '../../test/support/start-command.ts';
import { onInterrupt } from './cleanup.ts';

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  /** Everything the server printed (stdout and stderr), for errors and its startup log line. */
  output(): string;
  /** Resolves with ms since spawn at the first 200 from GET /readyz. */
  ready(timeoutMs?: number): Promise<number>;
  /**
   * Sends `signal` (SIGTERM by default) and waits for the exit; resolves with ms until exit and
   * the exit code. With `group`, signals the whole process group, as a terminal's Ctrl-C does,
   * and waits until no process of the group is left.
   */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ ms: number; code: number | null }>;
}

/**
 * Spawns the real server the way `npm start` runs it (or `npm start` itself), on a free
 * loopback port. Only this child is ever signalled, by its pid.
 */
export async function spawnServer({
  env,
  command = process.execPath,
  extraNodeArgs = [],
  args = defaultArgs(extraNodeArgs),
  group = false,
}: {
  env: Record<string, string>;
  command?: string;
  /** Node flags added to those of `npm start` (a CPU profile, say). */
  extraNodeArgs?: string[];
  args?: string[];
  /** Start in a new process group (for `npm start`, whose server is a grandchild). */
  group?: boolean;
}): Promise<ServerProcess> {
  const port = await freePort();
  const base = { ...process.env };
  delete base.DATABASE_URL; // only what the bench passes
  const started = performance.now();
  const child = spawn(command, args, {
    cwd: process.cwd(),
    env: { ...base, HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: group,
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));
  // On an interrupted bench: stop the server (it stops its own embedded PostgreSQL).
  const forget = onInterrupt(() => {
    if (exitCode === undefined) child.kill('SIGTERM');
    return exited;
  });
  void exited.then(forget);

  return {
    child,
    pid: child.pid!,
    port,
    output: () => out,
    async ready(timeoutMs = 60_000) {
      const deadline = started + timeoutMs;
      for (;;) {
        if (exitCode !== undefined) throw new Error(`server exited (${exitCode}) before it was ready:\n${out.slice(-2000)}`);
        if ((await status(port, '/readyz')) === 200) return performance.now() - started;
        if (performance.now() > deadline) throw new Error(`server not ready after ${timeoutMs} ms:\n${out.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop(signal = 'SIGTERM', timeoutMs = 30_000) {
      const t0 = performance.now();
      const pid = child.pid!;
      const send = (sig: NodeJS.Signals) => {
        try {
          if (group) process.kill(-pid, sig);
          else if (exitCode === undefined) child.kill(sig);
        } catch {
          // already gone
        }
      };
      send(signal);
      const timer = setTimeout(() => send('SIGKILL'), timeoutMs);
      const code = await exited;
      // The group's other members (npm's children) may outlive its leader.
      while (group && groupAlive(pid) && performance.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 10));
      if (group && groupAlive(pid)) send('SIGKILL');
      clearTimeout(timer);
      return { ms: performance.now() - t0, code };
    },
  };
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Status of a GET, or 0 when nothing answers yet. A fresh connection each time. */
function status(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** `npm start`'s command line without npm: the same flags and script, plus `extra` flags. */
function defaultArgs(extra: string[]): string[] {
  const { nodeArgs, script } = startCommand();
  return [...nodeArgs, ...extra, script];
}
