import { inject } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createDb, dropSchema, ensureSchema, type Db } from '../../storage/db.ts';
import { migrate } from '../../storage/migrate.ts';

export interface TestDb {
  db: Db;
  url: string;
  schema: string;
  /** Another pool on the same schema (a restarted process sees the same data). */
  reopen(): Db;
  cleanup(): Promise<void>;
}

/** A fresh, migrated schema on the test database; one per test file or test. */
export async function testDb(which: 'default' | 'embedded' = 'default'): Promise<TestDb> {
  const url = which === 'embedded' ? inject('embeddedDatabaseUrl') : inject('databaseUrl');
  const schema = `t_${randomBytes(6).toString('hex')}`;
  await ensureSchema(url, schema);
  const db = createDb({ connectionString: url, schema });
  await migrate(db);
  const opened: Db[] = [db];
  return {
    db,
    url,
    schema,
    reopen() {
      const d = createDb({ connectionString: url, schema });
      opened.push(d);
      return d;
    },
    async cleanup() {
      await Promise.all(opened.map((d) => d.close()));
      await dropSchema(url, schema);
    },
  };
}

export const databaseKind = () => inject('databaseKind');
