import type { Db, Sql } from '../storage/db.ts';
import { StaleEpochError } from './errors.ts';
import type { ActorEvent, PendingTimer } from './types.ts';

export interface AppendOp {
  type: string;
  key: string;
  event: ActorEvent;
  idempotencyKey: string | undefined;
  receivedAt: number;
  /** The actor has no row yet. */
  create: boolean;
  /** Hands out the actor's next seq (called only for an event that is not a resend). */
  allocate(): number;
  /** Takes back a seq handed out in a batch that did not commit. */
  release(): void;
}

/** `seq` is the journal seq of the event: the original one when the key was seen before. */
export type AppendOutcome = { seq: number; duplicate: boolean };

export interface TransitionRecord {
  seq: number | null;
  eventType: string;
  from: string;
  to: string;
  accepted: boolean;
  at: number;
}

export interface SaveOp {
  type: string;
  key: string;
  epoch: number;
  snapshot: unknown;
  state: string;
  status: string;
  processedSeq: number;
  /** An invoked effect is running in this state. */
  effectsInFlight: boolean;
  transitions: TransitionRecord[];
  /** The full set of pending timers, or undefined when unchanged since the last save. */
  timers: PendingTimer[] | undefined;
}

interface Waiting<T, R> {
  op: T;
  resolve(result: R): void;
  reject(err: unknown): void;
}

/**
 * Group commit: appends and state saves queued while a transaction is in flight go together
 * into the next one, so one fsync covers many events across many actors.
 */
export class Committer {
  private appends: Waiting<AppendOp, AppendOutcome>[] = [];
  private saves: Waiting<SaveOp, void>[] = [];
  private running: Promise<void> | undefined;
  /** Flushes so far and ops they carried, for metrics and benchmarks. */
  readonly stats = { flushes: 0, appends: 0, saves: 0 };

  constructor(
    private readonly db: Db,
    private readonly maxBatch = 2000,
  ) {}

  append(op: AppendOp): Promise<AppendOutcome> {
    return new Promise((resolve, reject) => {
      this.appends.push({ op, resolve, reject });
      this.kick();
    });
  }

  save(op: SaveOp): Promise<void> {
    return new Promise((resolve, reject) => {
      this.saves.push({ op, resolve, reject });
      this.kick();
    });
  }

  get busy(): boolean {
    return this.running !== undefined || this.appends.length > 0 || this.saves.length > 0;
  }

  /** Resolves once everything queued so far is committed (or failed). */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  private kick(): void {
    this.running ??= this.loop().finally(() => {
      this.running = undefined;
      // Ops queued after the loop saw empty queues, but before this ran, need a new loop.
      if (this.appends.length || this.saves.length) this.kick();
    });
  }

  private async loop(): Promise<void> {
    // Yield once so that sends arriving in the same tick share the first transaction.
    await new Promise((r) => setImmediate(r));
    while (this.appends.length || this.saves.length) {
      const appends = this.appends.splice(0, this.maxBatch);
      const saves = this.saves.splice(0, this.maxBatch);
      let outcomes: AppendOutcome[] = [];
      // Appends that were handed a seq in this attempt (their seqs go back if it fails).
      const allocated: Waiting<AppendOp, AppendOutcome>[] = [];
      try {
        outcomes = await this.db.tx(async (tx) => {
          const out = await writeAppends(
            tx,
            appends.map((a) => ({
              ...a.op,
              allocate: () => (allocated.push(a), a.op.allocate()),
            })),
          );
          await writeSaves(tx, saves.map((s) => s.op));
          return out;
        });
      } catch (err) {
        for (const w of allocated) w.op.release();
        for (const w of [...appends, ...saves]) w.reject(err);
        continue;
      }
      this.stats.flushes++;
      this.stats.appends += appends.length;
      this.stats.saves += saves.length;
      appends.forEach((w, i) => w.resolve(outcomes[i]!));
      for (const w of saves) w.resolve();
    }
  }
}

async function writeAppends(tx: Sql, ops: AppendOp[]): Promise<AppendOutcome[]> {
  if (!ops.length) return [];
  const keyed = ops.filter((o) => o.idempotencyKey !== undefined);
  const earlier = new Map<string, number>();
  if (keyed.length) {
    const found = await tx.query<{ type: string; key: string; idempotency_key: string; seq: number }>(
      `SELECT j.type, j.key, j.idempotency_key, j.seq FROM journal j
         JOIN unnest($1::text[], $2::text[], $3::text[]) AS m(type, key, ik)
           ON j.type = m.type AND j.key = m.key AND j.idempotency_key = m.ik`,
      [keyed.map((o) => o.type), keyed.map((o) => o.key), keyed.map((o) => o.idempotencyKey)],
    );
    for (const r of found.rows) earlier.set(`${r.type}\u0000${r.key}\u0000${r.idempotency_key}`, r.seq);
  }
  // Seqs are handed out only to events that are really new, so they stay dense.
  const outcomes: AppendOutcome[] = [];
  const fresh: (AppendOp & { seq: number })[] = [];
  for (const op of ops) {
    const id = op.idempotencyKey === undefined ? undefined : `${op.type}\u0000${op.key}\u0000${op.idempotencyKey}`;
    const seen = id === undefined ? undefined : earlier.get(id);
    if (seen !== undefined) {
      outcomes.push({ seq: seen, duplicate: true });
      continue;
    }
    const seq = op.allocate();
    if (id !== undefined) earlier.set(id, seq);
    fresh.push({ ...op, seq });
    outcomes.push({ seq, duplicate: false });
  }
  if (!fresh.length) return outcomes;
  const creates = fresh.filter((o) => o.create);
  if (creates.length) {
    await tx.query(
      `INSERT INTO actors (type, key) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`,
      [creates.map((o) => o.type), creates.map((o) => o.key)],
    );
  }
  try {
    await tx.query(
      `INSERT INTO journal (type, key, seq, event, idempotency_key, received_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::jsonb[], $5::text[], $6::bigint[])`,
      [
        fresh.map((o) => o.type),
        fresh.map((o) => o.key),
        fresh.map((o) => o.seq),
        fresh.map((o) => JSON.stringify(o.event)),
        fresh.map((o) => o.idempotencyKey ?? null),
        fresh.map((o) => o.receivedAt),
      ],
    );
  } catch (err) {
    // A seq already taken means another process wrote to one of these actors.
    if ((err as { code?: string }).code === '23505') throw new StaleEpochError('journal write refused: another writer appended to one of these actors', { cause: err });
    throw err;
  }
  return outcomes;
}

async function writeSaves(tx: Sql, ops: SaveOp[]): Promise<void> {
  if (!ops.length) return;
  // Saves of one actor are queued in processing order; the last one carries the newest state.
  const latest = new Map<string, SaveOp>();
  for (const op of ops) {
    const id = `${op.type}\u0000${op.key}`;
    const prev = latest.get(id);
    // "Timers unchanged" means unchanged since the previous save, which may be in this batch.
    latest.set(id, op.timers === undefined && prev?.timers !== undefined ? { ...op, timers: prev.timers } : op);
  }
  const states = [...latest.values()];
  const updated = await tx.query(
    `UPDATE actors a SET snapshot = v.snapshot, state = v.state, status = v.status,
            processed_seq = v.seq, effects_in_flight = v.busy, updated_at = now()
       FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bool[])
            AS v(type, key, snapshot, state, status, seq, epoch, busy)
      WHERE a.type = v.type AND a.key = v.key AND a.owner_epoch = v.epoch`,
    [
      states.map((o) => o.type),
      states.map((o) => o.key),
      states.map((o) => JSON.stringify(o.snapshot)),
      states.map((o) => o.state),
      states.map((o) => o.status),
      states.map((o) => o.processedSeq),
      states.map((o) => o.epoch),
      states.map((o) => o.effectsInFlight),
    ],
  );
  if (updated.rowCount !== states.length) {
    throw new StaleEpochError(`state write refused: ${states.length - (updated.rowCount ?? 0)} actor(s) are owned under a newer epoch`);
  }
  const transitions = ops.flatMap((o) => o.transitions.map((t) => ({ ...t, type: o.type, key: o.key })));
  if (transitions.length) {
    await tx.query(
      `INSERT INTO transitions (type, key, seq, event_type, from_state, to_state, accepted, at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::bigint[])`,
      [
        transitions.map((t) => t.type),
        transitions.map((t) => t.key),
        transitions.map((t) => t.seq),
        transitions.map((t) => t.eventType),
        transitions.map((t) => t.from),
        transitions.map((t) => t.to),
        transitions.map((t) => t.accepted),
        transitions.map((t) => t.at),
      ],
    );
  }
  const timerOps = states.filter((o) => o.timers !== undefined);
  if (timerOps.length) {
    await tx.query(`DELETE FROM timers t USING unnest($1::text[], $2::text[]) AS v(type, key) WHERE t.type = v.type AND t.key = v.key`, [
      timerOps.map((o) => o.type),
      timerOps.map((o) => o.key),
    ]);
    const timers = timerOps.flatMap((o) => o.timers!.map((t) => ({ ...t, type: o.type, key: o.key })));
    if (timers.length) {
      await tx.query(
        `INSERT INTO timers (type, key, timer_id, event, due_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::bigint[])`,
        [
          timers.map((t) => t.type),
          timers.map((t) => t.key),
          timers.map((t) => t.id),
          timers.map((t) => JSON.stringify(t.event)),
          timers.map((t) => t.dueAt),
        ],
      );
    }
  }
}
