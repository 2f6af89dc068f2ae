import type { Activation } from './activation.ts';
import type { ActorRow } from './store.ts';
import type { ActorView, ActorEvent, ResolvedActorType } from './types.ts';

export interface StepResult {
  accepted: boolean;
  state: string;
  view: ActorView;
  error?: Error;
}

interface Waiter {
  resolve(r: StepResult): void;
  reject(err: unknown): void;
}

/**
 * The runtime's bookkeeping for one actor it has touched: journal positions, the in-memory
 * mailbox of committed-but-unprocessed events, and the live activation when resident.
 */
export class Entry {
  /** Highest seq handed out (committed or in flight). */
  lastSeq = 0;
  /** Highest seq whose state is committed. */
  processedSeq = 0;
  /** Highest seq applied to the live activation (committed or not). */
  appliedSeq = 0;
  epoch = 0;
  /**
   * The stored row read when this entry was made, kept for its first activation; null when
   * there was none (the actor is new), undefined once used.
   */
  preloaded: ActorRow | null | undefined;
  inbox: { seq: number; event: ActorEvent }[] = [];
  activation: Activation | undefined;
  /** The last persisted snapshot that passed the size bound, as JSON (for reverting a step). */
  lastGoodJson: string | undefined;
  draining = false;
  inflightAppends = 0;
  pendingSaves = 0;
  lastActive: number;
  private waiters = new Map<number, Waiter[]>();
  private results = new Map<number, StepResult>();

  constructor(
    readonly def: ResolvedActorType,
    readonly key: string,
    now: number,
  ) {
    this.lastActive = now;
  }

  /** Takes the stored row (null: the actor is new) as it was read when this entry was made. */
  preload(row: ActorRow | null): void {
    this.preloaded = row;
    if (!row) return;
    this.lastSeq = row.last_seq;
    this.processedSeq = this.appliedSeq = row.processed_seq;
    this.epoch = row.owner_epoch;
  }

  get id(): string {
    return `${this.def.name}/${this.key}`;
  }

  /** Adds a committed event, keeping seq order and dropping what was already applied. */
  enqueue(seq: number, event: ActorEvent): void {
    if (seq <= this.appliedSeq || this.inbox.some((e) => e.seq === seq)) return;
    const last = this.inbox[this.inbox.length - 1];
    this.inbox.push({ seq, event });
    if (last && last.seq > seq) this.inbox.sort((a, b) => a.seq - b.seq);
  }

  wait(seq: number): Promise<StepResult> {
    return new Promise((resolve, reject) => {
      const list = this.waiters.get(seq) ?? [];
      list.push({ resolve, reject });
      this.waiters.set(seq, list);
    });
  }

  wants(seq: number): boolean {
    return this.waiters.has(seq);
  }

  /** Records what processing `seq` did, to hand to its waiters once committed. */
  processed(seq: number, result: StepResult): void {
    this.results.set(seq, result);
  }

  /** State up to `seq` is committed: wake its waiters. */
  committed(seq: number): void {
    this.processedSeq = Math.max(this.processedSeq, seq);
    for (const [s, list] of this.waiters) {
      if (s > seq) continue;
      const result = this.results.get(s);
      this.waiters.delete(s);
      this.results.delete(s);
      if (result) for (const w of list) w.resolve(result);
      else for (const w of list) w.reject(new Error(`no result recorded for seq ${s}`));
    }
  }

  /** Fails every waiter (a save failed; the actor reloads from storage). */
  failAll(err: unknown): void {
    for (const list of this.waiters.values()) for (const w of list) w.reject(err);
    this.waiters.clear();
    this.results.clear();
  }

  get idle(): boolean {
    return (
      !this.draining &&
      this.inbox.length === 0 &&
      this.inflightAppends === 0 &&
      this.pendingSaves === 0 &&
      this.waiters.size === 0 &&
      !this.activation?.busy
    );
  }
}
