import pg from 'pg';

/** The one narrow port through which everything reaches Postgres. */
export interface Sql {
  /**
   * Runs one statement. With `name`, the statement is prepared once per connection and reused
   * (for hot statements whose text is one of a few variants).
   */
  query<R extends pg.QueryResultRow = any>(text: string, values?: unknown[], name?: string): Promise<pg.QueryResult<R>>;
}

/** One dedicated connection, for session state (advisory locks, LISTEN). */
export interface Session extends Sql {
  /** `fn` is called for each NOTIFY on a channel this session listens to. */
  onNotification(fn: (channel: string, payload: string) => void): void;
  /** `fn` is called once if the connection is lost (not after close()). */
  onLost(fn: (err: Error) => void): void;
  close(): Promise<void>;
}

export interface Db extends Sql {
  /** Opens a dedicated connection outside the pool; closed with the Db at the latest. */
  session(): Promise<Session>;
  /** Runs `fn` in one transaction; commits when it resolves, rolls back when it throws. */
  tx<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  /** The schema every connection of this pool uses (test isolation). */
  readonly schema: string;
  close(): Promise<void>;
}

export interface DbOptions {
  connectionString: string;
  schema?: string;
  max?: number;
}

// bigint columns (seq numbers, epoch millis) come back as JS numbers: they stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export function createDb({ connectionString, schema = 'public', max = 10 }: DbOptions): Db {
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`invalid schema name: ${schema}`);
  const pool = new pg.Pool({
    connectionString,
    max,
    options: `-c search_path=${schema}`,
    connectionTimeoutMillis: 10_000,
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  let closed: Promise<void> | undefined;
  const sessions = new Set<Session>();
  return {
    schema,
    async session() {
      if (closed) throw new Error('the database handle is closed');
      const client = new pg.Client({ connectionString, options: `-c search_path=${schema}`, connectionTimeoutMillis: 10_000 });
      let ended = false;
      let lost: ((err: Error) => void) | undefined;
      const session: Session = {
        query: (text, values, name) => (name ? client.query({ name, text, values: values as any[] }) : client.query(text, values as any[])),
        onNotification: (fn) => client.on('notification', (m) => fn(m.channel, m.payload ?? '')),
        onLost: (fn) => void (lost = fn),
        async close() {
          ended = true;
          sessions.delete(session);
          await client.end().catch(() => {});
        },
      };
      // Defined before connecting: a connection can fail while it is being made.
      const fail = (err: Error) => {
        if (ended) return;
        ended = true;
        sessions.delete(session);
        lost?.(err);
      };
      client.on('error', fail);
      client.on('end', () => fail(new Error('connection ended')));
      await client.connect();
      sessions.add(session);
      return session;
    },
    query: (text, values, name) => (name ? pool.query({ name, text, values: values as any[] }) : pool.query(text, values as any[])),
    async tx(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn({
          query: (text, values, name) => (name ? client.query({ name, text, values: values as any[] }) : client.query(text, values as any[])),
        });
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    close() {
      closed ??= Promise.all([pool.end(), ...[...sessions].map((s) => s.close())]).then(() => {});
      return closed;
    },
  };
}

/** Creates the schema if needed (used by tests that isolate by schema). */
export async function ensureSchema(connectionString: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`);
  } finally {
    await client.end();
  }
}

export async function dropSchema(connectionString: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
  } finally {
    await client.end();
  }
}
