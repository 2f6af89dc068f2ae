import type { Db, Sql } from '../../storage/db.ts';

export interface DbCounters {
  /** Queries run on the pool outside a transaction. */
  queries: number;
  transactions: number;
  /** Statements run inside transactions (BEGIN and COMMIT not counted). */
  txStatements: number;
  /** Wall time spent inside transactions, BEGIN to COMMIT, summed. */
  txMs: number;
  /** Wall time of each query outside transactions (pool wait included), while `record` is on. */
  queryMs: number[];
  record: boolean;
}

/** Wraps a Db to count its round trips and time its transactions (nothing else changes). */
export function instrumentDb(db: Db): { db: Db; counters: DbCounters } {
  const counters: DbCounters = { queries: 0, transactions: 0, txStatements: 0, txMs: 0, queryMs: [], record: false };
  const wrapped: Db = {
    schema: db.schema,
    query(text, values) {
      counters.queries++;
      if (!counters.record) return db.query(text, values);
      const t0 = performance.now();
      return db.query(text, values).finally(() => counters.queryMs.push(performance.now() - t0));
    },
    async tx(fn) {
      const t0 = performance.now();
      try {
        return await db.tx((sql: Sql) =>
          fn({
            query(text, values) {
              counters.txStatements++;
              return sql.query(text, values);
            },
          }),
        );
      } finally {
        counters.transactions++;
        counters.txMs += performance.now() - t0;
      }
    },
    close: () => db.close(),
  };
  return { db: wrapped, counters };
}
