import type { Db, Sql } from '../../storage/db.ts';

export interface DbCounters {
  /** Queries run on the pool outside a transaction, group-commit statements aside. */
  queries: number;
  /** Group-commit statements (the batch write, and the idempotency-key read before it). */
  commitStatements: number;
  /** Wall time of the batch writes, summed, and how many there were. */
  commitMs: number;
  commitWrites: number;
  transactions: number;
  /** Statements run inside transactions (BEGIN and COMMIT not counted). */
  txStatements: number;
  /** Wall time spent inside transactions, BEGIN to COMMIT, summed. */
  txMs: number;
  /** Wall time of each query outside transactions (pool wait included), while `record` is on. */
  queryMs: number[];
  record: boolean;
}

/** The committer's statements: its one-statement batch write and its idempotency-key read. */
const GROUP_COMMIT = /^(WITH (input|saved|stepped) AS|SELECT j\.type, j\.key, j\.idempotency_key)/;

/** Wraps a Db to count its round trips and time its transactions (nothing else changes). */
export function instrumentDb(db: Db): { db: Db; counters: DbCounters } {
  const counters: DbCounters = { queries: 0, commitStatements: 0, commitMs: 0, commitWrites: 0, transactions: 0, txStatements: 0, txMs: 0, queryMs: [], record: false };
  const wrapped: Db = {
    schema: db.schema,
    query(text, values, name) {
      if (GROUP_COMMIT.test(text)) {
        counters.commitStatements++;
        if (!text.startsWith('WITH ')) return db.query(text, values, name);
        const t0 = performance.now();
        return db.query(text, values, name).finally(() => {
          counters.commitWrites++;
          counters.commitMs += performance.now() - t0;
        });
      }
      counters.queries++;
      if (!counters.record) return db.query(text, values, name);
      const t0 = performance.now();
      return db.query(text, values, name).finally(() => counters.queryMs.push(performance.now() - t0));
    },
    async tx(fn) {
      const t0 = performance.now();
      try {
        return await db.tx((sql: Sql) =>
          fn({
            query(text, values, name) {
              counters.txStatements++;
              return sql.query(text, values, name);
            },
          }),
        );
      } finally {
        counters.transactions++;
        counters.txMs += performance.now() - t0;
      }
    },
    session: () => db.session(),
    close: () => db.close(),
  };
  return { db: wrapped, counters };
}
