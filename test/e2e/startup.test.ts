import { existsSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, freshStorage, spawnApp, type TestStorage } from '../support/server.ts';

/**
 * A start that cannot succeed must say why in one line and leave nothing running: the embedded
 * PostgreSQL is a child process of its own, and one left behind holds the data directory.
 */

let storage: TestStorage | undefined;
let holder: Server | undefined;

afterEach(async () => {
  await new Promise((resolve) => (holder ? holder.close(resolve) : resolve(undefined)));
  holder = undefined;
  await storage?.cleanup();
  storage = undefined;
});

describe('a server that cannot start', () => {
  it('stops at once with one line naming PORT when the port is taken, before starting PostgreSQL', async () => {
    storage = await freshStorage('embedded');
    if (storage.storage.kind !== 'embedded') throw new Error('embedded storage expected');
    const port = await freePort();
    holder = createServer();
    await new Promise<void>((resolve) => holder!.listen(port, '127.0.0.1', resolve));

    const { code, stderr, ms } = await runToExit({ PORT: String(port), DATA_DIR: storage.storage.dataDir });
    expect(code, stderr).toBe(2);
    expect(stderr.trim()).toBe(`cannot listen on 127.0.0.1:${port}: the port is in use by another process (set PORT to a free port)`);
    expect(existsSync(path.join(storage.storage.dataDir, 'pg')), 'the embedded cluster was never created').toBe(false);
    expect(ms, 'from spawn to exit').toBeLessThan(10_000);
  });

  it('stops the embedded PostgreSQL it started when a later step fails', async () => {
    storage = await freshStorage('embedded');
    if (storage.storage.kind !== 'embedded') throw new Error('embedded storage expected');
    // Nothing listens on a port that was free a moment ago: Redis is unreachable.
    const deadRedis = await freePort();
    const { code, stderr } = await runToExit({ PORT: String(await freePort()), DATA_DIR: storage.storage.dataDir, REDIS_URL: `redis://127.0.0.1:${deadRedis}` });
    expect(code, stderr).toBe(1);
    expect(stderr).toContain(`startup failed: Redis at REDIS_URL=redis://127.0.0.1:${deadRedis} is unreachable`);
    expect(existsSync(path.join(storage.storage.dataDir, 'pg', 'PG_VERSION')), 'the embedded cluster was created').toBe(true);
    // A cleanly stopped PostgreSQL removes its pid file; one left running keeps it.
    expect(existsSync(path.join(storage.storage.dataDir, 'pg', 'postmaster.pid')), 'embedded PostgreSQL left running').toBe(false);
  }, 90_000);

  it('stops the embedded PostgreSQL it started when SIGTERM comes before it is up', async () => {
    storage = await freshStorage('embedded');
    if (storage.storage.kind !== 'embedded') throw new Error('embedded storage expected');
    // A "Redis" that takes the connection and never answers holds the start after PostgreSQL is up.
    let reached!: () => void;
    const redisReached = new Promise<void>((resolve) => (reached = resolve));
    const silent = new Set<Socket>();
    holder = createServer((socket) => {
      silent.add(socket);
      reached();
    });
    const redisPort = await freePort();
    await new Promise<void>((resolve) => holder!.listen(redisPort, '127.0.0.1', resolve));
    const server = spawnServer({ PORT: String(await freePort()), DATA_DIR: storage.storage.dataDir, REDIS_URL: `redis://127.0.0.1:${redisPort}` });
    await Promise.race([redisReached, server.exited]);
    expect(existsSync(path.join(storage.storage.dataDir, 'pg', 'postmaster.pid')), 'embedded PostgreSQL running').toBe(true);
    server.child.kill('SIGTERM');
    const { code, signal, stderr } = await server.exited;
    silent.forEach((socket) => socket.destroy());
    expect({ code, signal }, stderr).toEqual({ code: 0, signal: null });
    expect(stderr).toContain('SIGTERM before the app was up: stopping');
    expect(existsSync(path.join(storage.storage.dataDir, 'pg', 'postmaster.pid')), 'embedded PostgreSQL left running').toBe(false);
  }, 90_000);
});

/** Runs the server as `npm start` does with `env` until it exits (at most 60 s). */
function runToExit(env: Record<string, string>): Promise<{ code: number | null; stderr: string; ms: number }> {
  return spawnServer(env).exited;
}

function spawnServer(env: Record<string, string>) {
  const started = performance.now();
  const child = spawnApp(env);
  child.stdout!.resume(); // unread, it could fill and stall the server
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; ms: number }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server still running after 60 s; stderr:\n${stderr}`));
    }, 60_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr, ms: performance.now() - started });
    });
  });
  return { child, exited };
}
