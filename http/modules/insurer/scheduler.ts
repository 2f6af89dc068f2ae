import { randomUUID } from 'node:crypto';
import type { Clock } from '../../../actors/clock.ts';
import type { Line, LineHolder } from '../../../storage/line/types.ts';

/** Interactive first; then listing, which feeds the bulk work; then bulk. */
export type Priority = 'interactive' | 'listing' | 'bulk';
const RANK: Record<Priority, number> = { interactive: 0, listing: 1, bulk: 2 };

interface Waiter<T = unknown> {
  id: string;
  kind: Priority;
  what: string;
  /** Our back-off: due from then, and sent earlier only when nothing else can go. */
  notBefore: number;
  /** The wait the insurer named (Retry-After): never sent before it, whatever else waits. */
  holdUntil: number;
  seq: number;
  fn: (signal: AbortSignal) => Promise<T>;
  resolve(v: T): void;
  reject(err: unknown): void;
}

export interface SchedulerOptions {
  line: Line;
  lineId: string;
  node: string;
  /** Longest a request may take; the lease outlives it by `leaseMarginMs`. */
  requestTimeoutMs: number;
  clock: Clock;
  leaseMarginMs?: number;
  /**
   * With a line that can hold (both stores) or renew (Postgres): how much longer than a request's
   * needs a lease is taken, so the holder keeps it for its next requests without asking the store
   * at all (hold) for this long, then renews it (Postgres) or takes it afresh (Redis). After a
   * crash, other processes wait this much longer for the line.
   */
  renewSlackMs?: number;
  /** How long to wait before asking again while another process holds the line. */
  busyPollMs?: number;
  pausedPollMs?: number;
  onError?: (err: unknown) => void;
  /** The queue changed (a request queued, sent or withdrawn): `waiting` may read differently. */
  onQueueChange?: () => void;
}

/** Thrown into a queued request when the line is stopped. */
export class LineStoppedError extends Error {
  override readonly name = 'LineStoppedError';
}

/**
 * Sends one request at a time to one insurer through the line (a fenced lease shared with every
 * other process, refused while paused). Interactive requests go before bulk ones, in this process
 * by the queue's order and across processes by the line store: an interactive request refused
 * because another process holds the line keeps that process's bulk work off it, so the holder
 * lets go after its request. While it has work queued, the loop keeps the lease from one request
 * to the next: where the store can hold (Redis), it sends the next request at once, without
 * asking the store, while enough of the lease is left and no signal came (a pause, or another
 * process's interactive request; see `LineHold`), so the line is not idle for a round trip
 * between requests; otherwise a renew where the store has one (no durable write until the lease
 * runs short), or a handoff. A retry
 * backing off (`notBefore`) waits while others can use the line; when nothing else is
 * eligible, the earliest such retry goes at once: the insurer sees one request either way, and
 * an idle line helps nobody. A wait the insurer named itself (429 Retry-After, `holdUntil`) is
 * always honoured, but only for as long as it named: the rest of a longer back-off may go early.
 */
export class LineScheduler {
  private readonly queue: Waiter[] = [];
  /** The queue's length by priority, kept as it changes. */
  private readonly counts: Record<Priority, number> = { interactive: 0, listing: 0, bulk: 0 };
  private running: Promise<void> | undefined;
  private seq = 0;
  private stopped = false;
  /** Ends the loop's current sleep early; set only while it sleeps. */
  private wake: (() => void) | undefined;
  /**
   * Set when a request is queued (or the line stops); cleared by the loop just before it looks
   * at the queue. A sleep that begins with it set returns at once, so a request queued while the
   * loop was releasing the lease or settling the last request is never left for the next timer.
   */
  private queued = false;
  /** The lease this loop holds, if any. */
  private token: number | null = null;
  /** With a store that can hold: until when (performance.now) the held lease may be used without asking. */
  private heldUntil = 0;
  /** Signals heard (see LineHold); a held lease is used without asking only while this is unchanged. */
  private signals = 0;
  private heldSince = -1;
  private unwatch: (() => Promise<void>) | undefined;
  /** The request in flight and the lease it was sent under. */
  private current: { token: number; holder: LineHolder } | undefined;
  /** The last request's outcome, not yet told to its waiter (see `tell`). */
  private untold: (() => void) | undefined;
  readonly stats = { made: 0, failed: 0, inFlight: 0, lastRequestAt: 0 };

  constructor(private readonly o: SchedulerOptions) {}

  get waiting(): Record<Priority, number> {
    return { ...this.counts };
  }

  /** Runs `fn` holding the line; resolves or rejects with its outcome. */
  run<T>(
    kind: Priority,
    what: string,
    fn: (signal: AbortSignal) => Promise<T>,
    { notBefore = 0, holdUntil = 0, signal }: { notBefore?: number; holdUntil?: number; signal?: AbortSignal } = {},
  ): Promise<T> {
    if (this.stopped) return Promise.reject(new LineStoppedError('line stopped'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
      // Withdrawn before it is sent: it leaves the queue; once sent, it runs to its end.
      const onAbort = () => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) {
          this.queue.splice(i, 1);
          this.counts[waiter.kind]--;
          this.o.onQueueChange?.();
          reject(signal!.reason);
        }
      };
      const done = () => signal?.removeEventListener('abort', onAbort);
      const waiter = {
        id: randomUUID(),
        kind,
        what,
        notBefore: Math.max(notBefore, holdUntil),
        holdUntil,
        seq: this.seq++,
        fn,
        resolve: (v: T) => (done(), resolve(v)),
        reject: (e: unknown) => (done(), reject(e)),
      } as Waiter;
      this.queue.push(waiter);
      this.counts[kind]++;
      this.o.onQueueChange?.();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.notify();
      this.kick();
    });
  }

  private kick(): void {
    this.running ??= this.loop().finally(() => {
      this.running = undefined;
      // A request queued after the loop saw an empty queue, but before this ran, needs a loop.
      if (this.queue.length && !this.stopped) this.kick();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.queue.splice(0)) {
      this.counts[w.kind]--;
      w.reject(new LineStoppedError('line stopped'));
    }
    this.o.onQueueChange?.();
    this.notify();
    await this.running;
    await this.unwatch?.().catch(() => {});
    this.unwatch = undefined;
  }

  /**
   * A signal to the held lease: the next request asks the store first. A pause (`stop`) is
   * answered at once with the request in flight, after which nothing more starts under the lease.
   */
  private onSignal(signal: 'stop' | 'want'): void {
    this.signals++;
    const hold = this.o.line.hold;
    if (signal !== 'stop' || !hold || this.token === null) return;
    const inFlight = this.current?.token === this.token ? this.current.holder : null;
    hold.ack(this.o.lineId, this.token, inFlight).catch((err: unknown) => this.o.onError?.(err));
  }

  /** New work (or a stop): wakes the loop if it sleeps, and makes its next sleep return at once. */
  private notify(): void {
    this.queued = true;
    this.wake?.();
  }

  /**
   * The next request: eligible by rank, oldest first within a rank; failing that the
   * soonest retry that may go early; `wait` when every waiter is held by a Retry-After.
   */
  private pick(now: number): Waiter | { wait: number } {
    let best: Waiter | undefined;
    let early: Waiter | undefined;
    let heldUntil = Infinity;
    for (const w of this.queue) {
      if (w.notBefore <= now) {
        if (!best || (w.kind !== best.kind ? RANK[w.kind] < RANK[best.kind] : w.seq < best.seq)) best = w;
      } else if (w.holdUntil > now) {
        heldUntil = Math.min(heldUntil, w.holdUntil);
      } else if (!early || (w.kind !== early.kind ? RANK[w.kind] < RANK[early.kind] : w.notBefore < early.notBefore)) {
        early = w;
      }
    }
    return best ?? early ?? { wait: heldUntil - now };
  }

  /**
   * Sleeps `ms` on the clock. With `untilWork`, new work ends it early, including work queued
   * since the loop last looked at the queue (the latch is armed before any await there). Waits
   * that new work cannot shorten (the line busy elsewhere, paused, or the store unreachable)
   * end early only for a stop.
   */
  private sleep(ms: number, untilWork = false): Promise<void> {
    if (this.stopped || (untilWork && this.queued)) return Promise.resolve();
    return new Promise((resolve) => {
      const h = this.o.clock.setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      const end = () => {
        this.o.clock.clearTimeout(h);
        this.wake = undefined;
        resolve();
      };
      this.wake = untilWork ? end : () => void (this.stopped && end());
    });
  }

  private async loop(): Promise<void> {
    const { line, lineId, node, requestTimeoutMs, clock, leaseMarginMs = 2_000, renewSlackMs = 1_000, busyPollMs = 5, pausedPollMs = 200 } = this.o;
    // What a request needs left of its lease when it is sent: it is aborted well before.
    const minLeftMs = requestTimeoutMs + leaseMarginMs;
    const hold = line.hold;
    const ttlMs = line.renew || hold ? minLeftMs + renewSlackMs : minLeftMs;
    try {
      while (this.queue.length && !this.stopped) {
        // Armed before the queue is read: whatever is queued from here on ends the next sleep.
        this.queued = false;
        const next = this.pick(clock.now());
        if ('wait' in next) {
          this.tell();
          await this.letGo();
          await this.sleep(next.wait, true);
          continue;
        }
        const w = next;
        const holder: LineHolder = { requestId: w.id, node, kind: w.kind === 'interactive' ? 'interactive' : 'bulk', what: w.what, startedAt: Date.now() };
        const kept = this.token !== null && hold && this.heldSince === this.signals && this.heldUntil - performance.now() >= minLeftMs;
        if (!kept) {
          this.tell();
          const got = await this.ask(holder, ttlMs, minLeftMs);
          if (got !== 'ok') {
            await this.sleep(got === 'paused' ? pausedPollMs : got === 'unreachable' ? 500 : busyPollMs);
            continue;
          }
        }
        const token = this.token!;
        const at = this.queue.indexOf(w);
        if (at < 0) continue; // withdrawn while the lease was being taken
        this.queue.splice(at, 1);
        this.counts[w.kind]--;
        this.o.onQueueChange?.();
        this.stats.made++;
        this.stats.inFlight++;
        this.stats.lastRequestAt = clock.now();
        // The request never outlives its lease: it is aborted at the timeout (a clearable timer,
        // not AbortSignal.timeout, which keeps every signal alive until it fires).
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(new Error('request timed out')), requestTimeoutMs);
        this.current = { token, holder };
        try {
          // Told on the loop's next turn: by then this request is on its way.
          this.tell(true);
          const sent = w.fn(abort.signal);
          const value = await sent;
          this.untold = () => w.resolve(value);
        } catch (err) {
          this.stats.failed++;
          this.untold = () => w.reject(err);
        } finally {
          this.current = undefined;
          clearTimeout(timer);
          this.stats.inFlight--;
        }
      }
    } finally {
      this.tell();
      await this.letGo();
    }
  }

  /**
   * Tells the last request's waiter its outcome: at once, or (`later`, as the next request
   * starts) on the event loop's next turn, so that what the waiter does next (storing the
   * answer, queueing its retry) does not hold up the request being started.
   */
  private tell(later = false): void {
    const untold = this.untold;
    this.untold = undefined;
    if (!untold) return;
    if (later) setImmediate(untold);
    else untold();
  }

  /**
   * Asks the store for the line for `holder`'s request: a fresh lease, a renewal or a handoff of
   * the one held. The pause is checked here, at the moment of sending: the store refuses the
   * lease (or the handoff, or the renewal) atomically while the line is paused, whichever
   * process paused it; and a held lease taken while a signal came is let go unused.
   */
  private async ask(holder: LineHolder, ttlMs: number, minLeftMs: number): Promise<'ok' | 'busy' | 'paused' | 'unreachable'> {
    const { line, lineId } = this.o;
    const hold = line.hold;
    const held = hold !== undefined;
    let got;
    try {
      if (hold && !this.unwatch) this.unwatch = await hold.watch(lineId, (signal) => this.onSignal(signal));
      const since = this.signals;
      const askedAt = performance.now();
      const token = this.token;
      this.token = null;
      if (token === null) got = await line.acquire(lineId, holder, ttlMs, { held });
      // A held lease is kept for requests sent without asking until `heldUntil`, reckoned from
      // now: its renewal always extends it (durably) to `ttlMs` from now.
      else if (line.renew) got = await line.renew(lineId, token, { holder, ttlMs, minLeftMs: held ? ttlMs : minLeftMs, held });
      else got = await line.release(lineId, token, { holder, ttlMs, held });
      if (!got || !got.ok) return got && !got.ok ? got.reason : 'busy';
      this.token = got.token;
      if (held) {
        if (this.signals !== since) {
          await this.letGo();
          return 'busy';
        }
        this.heldUntil = askedAt + ttlMs;
        this.heldSince = since;
      }
      return 'ok';
    } catch (err) {
      // Redis or the database is unreachable: no lease, no request. Wait and ask again.
      this.token = null;
      this.o.onError?.(err);
      return 'unreachable';
    }
  }

  /** Lets go of a held lease (before waiting, and at the end). */
  private async letGo(): Promise<void> {
    const token = this.token;
    this.token = null;
    if (token !== null) await this.o.line.release(this.o.lineId, token).catch((err: unknown) => this.o.onError?.(err));
  }
}
