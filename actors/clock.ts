/**
 * The runtime's only source of time. XState receives it as its `clock`, durable timers store
 * absolute due times taken from it, and tests drive a {@link ManualClock} instead of sleeping.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Node counts a timeout from the event loop's cached time, which may be a millisecond or more
 * behind `Date.now()`, so a timer can fire before its due time by the clock. A durable timer
 * must never fire early: one that wakes before its time sleeps for the rest.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const due = Date.now() + ms;
    const handle: { timer?: NodeJS.Timeout } = {};
    const arm = (wait: number) => {
      handle.timer = setTimeout(() => {
        const left = due - Date.now();
        if (left > 0) arm(left);
        else fn();
      }, wait);
      handle.timer.unref?.();
    };
    arm(ms);
    return handle;
  },
  clearTimeout: (h) => clearTimeout((h as { timer?: NodeJS.Timeout } | undefined)?.timer),
};

interface Pending {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A clock that moves only when told to. `advance(ms)` fires due callbacks in time order and
 * lets promise continuations run between them, so IO started by a callback can settle.
 *
 * @example
 *   const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
 *   await clock.advance(5_000);
 */
export class ManualClock implements Clock {
  private pending: Pending[] = [];
  private nextId = 1;
  /** What `advance` awaits between firings; point it at the system under test. */
  settle: () => Promise<void> = settleIo;

  constructor(private current = 0) {}

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): number {
    const id = this.nextId++;
    this.pending.push({ id, at: this.current + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending = this.pending.filter((p) => p.id !== handle);
  }

  /** Number of callbacks waiting. */
  get size(): number {
    return this.pending.length;
  }

  /** Moves time forward by `ms`, firing everything that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const settle = () => this.settle();
    const target = this.current + ms;
    for (;;) {
      await settle();
      const next = this.earliest();
      if (!next || next.at > target) break;
      this.pending = this.pending.filter((p) => p !== next);
      this.current = Math.max(this.current, next.at);
      next.fn();
    }
    this.current = target;
    await settle();
  }

  /** Sets the time without firing anything (a process that was down while time passed). */
  set(time: number): void {
    this.current = time;
  }

  private earliest(): Pending | undefined {
    let best: Pending | undefined;
    for (const p of this.pending) if (!best || p.at < best.at || (p.at === best.at && p.id < best.id)) best = p;
    return best;
  }
}

/** Lets already-started IO (database round trips) and promise chains settle. */
async function settleIo(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}
