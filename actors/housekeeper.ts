import type { Db } from '../storage/db.ts';
import type { Clock } from './clock.ts';
import type { Entry } from './entry.ts';
import { dueTimers } from './store.ts';

export interface HousekeeperOptions {
  db: Db;
  clock: Clock;
  intervalMs: number;
  entries: Map<string, Entry>;
  wake(type: string, key: string): Promise<void>;
  evict(entry: Entry): void;
}

/**
 * The runtime's two background duties, both on the runtime clock:
 * - passivation: evict actors idle past their type's timeout (their timers stay in storage);
 * - the timer wheel: wake evicted actors whose timers fall due, at the due time.
 */
export class Housekeeper {
  private handle: unknown;
  private running = false;
  /** Actors with a wake-up already set, and when. */
  private scheduled = new Map<string, { handle: unknown; at: number }>();

  constructor(private readonly o: HousekeeperOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.tick();
  }

  stop(): void {
    this.running = false;
    this.o.clock.clearTimeout(this.handle);
    for (const s of this.scheduled.values()) this.o.clock.clearTimeout(s.handle);
    this.scheduled.clear();
  }

  /** True while a pass is waiting on storage. */
  get busy(): boolean {
    return this.inflight !== undefined;
  }

  private inflight: Promise<void> | undefined;

  /** One pass: evict the idle, then look ahead for timers of evicted actors. */
  tick(): void {
    // Fixed rate: the next pass is set before this one waits on storage.
    if (this.running) this.handle = this.o.clock.setTimeout(() => this.tick(), this.o.intervalMs);
    this.passivate();
    if (this.inflight) return;
    this.inflight = this.scheduleWakes()
      .catch(() => {
        // Storage briefly unreachable: the next pass tries again.
      })
      .finally(() => (this.inflight = undefined));
  }

  private passivate(): void {
    const now = this.o.clock.now();
    for (const entry of this.o.entries.values()) {
      if (now - entry.lastActive >= entry.def.idleTimeoutMs && entry.idle) this.o.evict(entry);
    }
  }

  private async scheduleWakes(): Promise<void> {
    const { clock } = this.o;
    // Looking two intervals ahead means a timer is never found after its due time.
    const horizon = clock.now() + 2 * this.o.intervalMs;
    const due = await dueTimers(this.o.db, horizon, 10_000);
    for (const { type, key, due_at } of due) {
      const id = `${type}/${key}`;
      if (this.o.entries.get(id)?.activation) continue;
      const prior = this.scheduled.get(id);
      if (prior && prior.at <= due_at) continue;
      if (prior) clock.clearTimeout(prior.handle);
      const handle = clock.setTimeout(() => {
        this.scheduled.delete(id);
        void this.o.wake(type, key);
      }, Math.max(0, due_at - clock.now()));
      this.scheduled.set(id, { handle, at: due_at });
    }
  }
}
