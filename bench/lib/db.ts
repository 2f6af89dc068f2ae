import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import pg from 'pg';
import { createDb, type Db } from '../../storage/db.ts';
import { startEmbeddedPostgres } from '../../storage/embedded.ts';
import { migrate } from '../../storage/migrate.ts';
import type { DbKind } from './args.ts';
import { onInterrupt } from './cleanup.ts';
import { parentPid } from './report.ts';

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

export interface BenchDb {
  kind: DbKind;
  /** Connection string of the fresh, migrated database (hand it to a server as DATABASE_URL). */
  url: string;
  db: Db;
  /** Closes the pool and drops the database (external) or stops the server and removes its files. */
  cleanup(): Promise<void>;
}

/**
 * A fresh, migrated database for one bench run: a new database on the external server
 * (DATABASE_URL, dropped afterwards), or an embedded server in a new `.tmp/bench-*` directory.
 */
export async function benchDb({ kind, label, poolSize = 10 }: { kind: DbKind; label: string; poolSize?: number }): Promise<BenchDb> {
  const suffix = `${label}_${process.pid}_${randomBytes(3).toString('hex')}`;
  if (kind === 'embedded') {
    const dir = `.tmp/bench-${suffix}`;
    rmSync(dir, { recursive: true, force: true });
    const server = await startEmbeddedPostgres({ dataDir: dir });
    const db = createDb({ connectionString: server.connectionString, max: poolSize });
    const cleanup = async () => {
      await db.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    };
    const done = onInterrupt(cleanup);
    await migrate(db);
    return { kind, url: server.connectionString, db, cleanup: () => (done(), cleanup()) };
  }
  const adminUrl = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const name = `bench_${suffix}`.toLowerCase();
  await adminQuery(adminUrl, `CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const db = createDb({ connectionString: url.toString(), max: poolSize });
  const cleanup = async () => {
    await db.close();
    await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  };
  const done = onInterrupt(cleanup);
  await migrate(db);
  return { kind, url: url.toString(), db, cleanup: () => (done(), cleanup()) };
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Pid of the PostgreSQL postmaster behind `db` (the server is local in every bench). */
export async function postmasterPid(db: Db): Promise<number> {
  const { rows } = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return parentPid(rows[0]!.pid);
}
