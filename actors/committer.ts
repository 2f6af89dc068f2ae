import type { Db } from '../storage/db.ts';
import { actorId, earlierSends, groupCommit, isKeyRace, refusal, type CommitRow } from './commit-sql.ts';
import type { ActorEvent, PendingTimer } from './types.ts';

export interface AppendOp {
  type: string;
  key: string;
  event: ActorEvent;
  /** The event as stored (serialized once, where its size was checked). */
  eventJson: string;
  idempotencyKey: string | undefined;
  receivedAt: number;
  /** Processing the event in the batch that appends it, when its actor is free to. */
  inline?: InlineStep;
}

/**
 * An event to a resident actor of this node with nothing else queued is processed right before
 * the batch that appends it is written: the event, the state it leads to and its transitions
 * are then committed by one write of the actor's row instead of two (append, then save), and
 * the event is never acknowledged unless its state is stored with it.
 */
export interface InlineStep {
  /**
   * Steps the actor with the event. Returns the save to write with it (its `processedSeq` is
   * the event's seq), or undefined when the actor is no longer free (the event is then appended
   * alone and processed after its commit, as any other).
   */
  apply(): SaveOp | undefined;
  /** The batch was committed (true), or nothing of it was written (false: the step is undone). */
  settle(committed: boolean): void;
}

/**
 * `seq` is the journal seq of the event (the original one when the key was seen before);
 * `owner` the node that owns the actor, and `ownerAlive` whether that node is alive (so an
 * event for an actor of another live node is that node's to process).
 */
export type AppendOutcome = {
  seq: number;
  duplicate: boolean;
  owner: string | null;
  ownerAlive: boolean;
  /** Processed in the batch that stored it (see {@link InlineStep}), its state committed with it. */
  processed: boolean;
};

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
  /** The persisted XState snapshot, as JSON. */
  snapshotJson: string;
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
 * Group commit: appends and state saves queued while transactions are in flight go together
 * into the next one, so one fsync covers many events across many actors. Up to `concurrency`
 * transactions run at once (each on its own connection), but an actor's appends, and its
 * saves, are never in two of them at the same time: its events commit in seq order, a failed
 * batch hands its seqs back in order, and its newest state is written last.
 */
export class Committer {
  private appends: Waiting<AppendOp, AppendOutcome>[] = [];
  private saves: Waiting<SaveOp, void>[] = [];
  /** Actors with appends (resp. saves) in a transaction that has not finished. */
  private readonly appending = new Set<string>();
  private readonly saving = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  private scheduled = false;
  /** Flushes so far and ops they carried, for metrics and benchmarks. */
  readonly stats = { flushes: 0, appends: 0, saves: 0, keyRetries: 0 };
  /** Until when batches read their idempotency keys before writing (see flush). */
  private readKeysUntil = 0;

  constructor(
    private readonly db: Db,
    /** This node: it owns the actors it creates. */
    private readonly node: string,
    private readonly opts: { maxBatch?: number; concurrency?: number } = {},
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
    return this.inFlight.size > 0 || this.scheduled || this.appends.length > 0 || this.saves.length > 0;
  }

  /** Resolves once everything queued so far is committed (or failed). */
  async drain(): Promise<void> {
    while (this.busy) {
      if (this.inFlight.size) await Promise.race(this.inFlight);
      else await new Promise((r) => setImmediate(r));
    }
  }

  private kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // Yield once so that sends arriving in the same tick share a transaction.
    setImmediate(() => {
      this.scheduled = false;
      this.start();
    });
  }

  /** Starts transactions while there is room and queued work whose actors are free. */
  private start(): void {
    const concurrency = this.opts.concurrency ?? 2;
    while (this.inFlight.size < concurrency) {
      // An actor's row is written by its appends (seq counter) and by its save (state). One
      // statement must not write a row twice, and two batches in flight that share rows could
      // lock them in opposite orders: an actor is in one batch at a time, appends or save.
      // Saves go first, so an actor that keeps receiving events still gets its state written.
      const saves = take(this.saves, (w) => actorId(w.op), this.saving, this.opts.maxBatch ?? 2000, this.appending);
      const appends = take(this.appends, (w) => actorId(w.op), this.appending, this.opts.maxBatch ?? 2000, this.saving);
      if (!appends.length && !saves.length) return;
      const flush: Promise<void> = this.flush(appends, saves).finally(() => {
        this.inFlight.delete(flush);
        for (const w of appends) this.appending.delete(actorId(w.op));
        for (const w of saves) this.saving.delete(actorId(w.op));
        if (this.appends.length || this.saves.length) this.start();
      });
      this.inFlight.add(flush);
    }
  }

  private async flush(appends: Waiting<AppendOp, AppendOutcome>[], saves: Waiting<SaveOp, void>[]): Promise<void> {
    let outcomes: AppendOutcome[];
    let ops = appends.map((w) => w.op);
    // Resends are rare: a batch is written without first reading whether its idempotency keys
    // were seen, and the journal's unique key refuses it if one was. Then it is written again
    // after the read, as are the batches of the next second (resends come in bursts, e.g. after
    // a crash).
    let readKeys = performance.now() < this.readKeysUntil;
    for (let attempt = 1; ; attempt++) {
      const stepped = new Set<AppendOp>();
      try {
        outcomes = await this.write(ops, saves.map((w) => w.op), stepped, readKeys);
        for (const op of stepped) op.inline!.settle(true);
        break;
      } catch (err) {
        // Nothing was written. Steps taken for this batch are undone, and its events go again
        // as plain appends: a step refused because another writer got to the actor first must
        // not fail the other events of the batch.
        for (const op of stepped) op.inline!.settle(false);
        if (stepped.size) ops = ops.map((op) => (stepped.has(op) ? { ...op, inline: undefined } : op));
        // A key seen before, or stored by another node's send of the same key between this
        // batch's read of the keys and its write: read them, and answer those as resends.
        const keyRefused = isKeyRace(err);
        if (keyRefused) {
          this.stats.keyRetries++;
          readKeys = true;
          this.readKeysUntil = performance.now() + 1000;
        }
        if ((keyRefused || stepped.size) && attempt < 4) continue;
        for (const w of [...appends, ...saves]) w.reject(refusal(err));
        return;
      }
    }
    this.stats.flushes++;
    this.stats.appends += appends.length;
    this.stats.saves += saves.length;
    appends.forEach((w, i) => w.resolve(outcomes[i]!));
    for (const w of saves) w.resolve();
  }

  private async write(appends: AppendOp[], saves: SaveOp[], stepped: Set<AppendOp>, readKeys: boolean): Promise<AppendOutcome[]> {
    // No other transaction of this committer touches these actors, so reading their
    // idempotency keys before the write is as good as reading them inside it.
    const earlier = readKeys ? await earlierSends(this.db, appends) : new Map<string, number>();
    // Only events that are really new get a seq, so seqs stay dense. A key sent twice in this
    // batch is answered with the seq its first send gets. A new event whose actor is free is
    // processed now, and written with its state (its seq is the one after the actor's last).
    const plain: AppendOp[] = [];
    const steps: { op: AppendOp; save: SaveOp }[] = [];
    const firstInBatch = new Map<string, Planned>();
    const plan = appends.map((op): Planned => {
      const id = op.idempotencyKey === undefined ? undefined : `${actorId(op)}\u0000${op.idempotencyKey}`;
      const seen = id === undefined ? undefined : earlier.get(id);
      if (seen !== undefined) return { seq: seen, duplicate: true, processed: false };
      const first = id === undefined ? undefined : firstInBatch.get(id);
      if (first !== undefined) return { seq: first.seq, row: first.row, duplicate: true, processed: false };
      const save = op.inline?.apply();
      let planned: Planned;
      if (save) {
        stepped.add(op);
        steps.push({ op, save });
        planned = { seq: save.processedSeq, duplicate: false, processed: true };
      } else {
        plain.push(op);
        planned = { row: plain.length - 1, duplicate: false, processed: false };
      }
      if (id !== undefined) firstInBatch.set(id, planned);
      return planned;
    });
    const statement = groupCommit(this.node, plain, saves, steps);
    const written = statement ? (await this.db.query<CommitRow>(statement.text, statement.values, statement.name)).rows[0] : undefined;
    const live = new Set(written?.live ?? []);
    const rows = written?.appended ?? [];
    return plan.map((p) => {
      if (p.row === undefined) {
        // A resend of an earlier event has no owner to report; a processed one is this node's.
        const owner = p.processed ? this.node : null;
        return { seq: p.seq!, duplicate: p.duplicate, owner, ownerAlive: owner !== null, processed: p.processed };
      }
      const row = rows[p.row]!;
      const owner = row.owner;
      return { seq: row.seq, duplicate: p.duplicate, owner, ownerAlive: owner === this.node || (owner !== null && live.has(owner)), processed: false };
    });
  }
}

/**
 * How an append of a batch is answered: a known seq (a resend's, or a processed event's), or the
 * row its plain append returns.
 */
type Planned = { duplicate: boolean; processed: boolean; seq?: number; row?: number };

/**
 * Removes from `queue` up to `max` ops of actors not in `busy` (nor `exclude`), in queue order, and marks
 * those actors busy. An actor's ops are taken all or none, so its order is kept.
 */
function take<T>(queue: T[], id: (item: T) => string, busy: Set<string>, max: number, exclude?: Set<string>): T[] {
  const taken: T[] = [];
  const kept: T[] = [];
  const claimed = new Set<string>();
  for (const item of queue) {
    const k = id(item);
    if (taken.length < max && (claimed.has(k) || (!busy.has(k) && !exclude?.has(k)))) {
      taken.push(item);
      claimed.add(k);
      busy.add(k);
    } else {
      // Busy elsewhere, or past the batch bound (then the actor stays busy, so its later ops
      // wait for this batch rather than overtake it).
      kept.push(item);
    }
  }
  queue.splice(0, queue.length, ...kept);
  return taken;
}
