import type { PubSub, RateLimiter } from '../../../storage/coordination/types.ts';

export interface PimsGateOptions {
  limiter: RateLimiter;
  /** Bucket name: one per practice system, shared by every process on the same Redis. */
  bucket: string;
  ratePerSec: number;
  /** Where a Retry-After is told to the other processes (Redis pub/sub in a cluster). */
  pubsub?: PubSub;
  /** Real-time sleep (the bucket refills on the coordinator's clock, not the runtime's). */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Every call to one practice system passes here: it takes one token from the shared bucket
 * (burst 1, so no second ever sees more than the configured rate from us, whichever processes
 * send), and waits out a Retry-After the practice system named. Callers queue in this process,
 * first come first served, and only the head of the queue asks the bucket, so thousands of
 * visits due together cost one poll at a time, not one each.
 */
export class PimsGate {
  private readonly queue: { resolve(): void; reject(err: unknown): void }[] = [];
  private running = false;
  private holdUntil = 0;
  readonly stats = { granted: 0, held: 0 };
  private readonly sleep: (ms: number) => Promise<void>;

  private unsubscribe: Promise<() => Promise<void>> | undefined;

  constructor(private readonly o: PimsGateOptions) {
    this.sleep = o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    // Another process got a 429: hold here too, until the wall-clock time it names.
    this.unsubscribe = o.pubsub?.subscribe(this.channel, (message) => {
      const until = Number(message);
      if (Number.isFinite(until)) this.holdUntil = Math.max(this.holdUntil, performance.now() + (until - Date.now()));
    });
    this.unsubscribe?.catch(() => {});
  }

  private get channel(): string {
    return `${this.o.bucket}:hold`;
  }

  async close(): Promise<void> {
    await (await this.unsubscribe?.catch(() => undefined))?.();
  }

  /** Callers waiting for their turn in this process. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Resolves when this caller may send one request. */
  turn(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const w = { resolve, reject };
      this.queue.push(w);
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.queue.indexOf(w);
          if (i < 0) return;
          this.queue.splice(i, 1);
          reject(signal.reason);
        },
        { once: true },
      );
      void this.run();
    });
  }

  /** The practice system answered 429: nobody, in this process or another, sends before `ms` has passed. */
  hold(ms: number): void {
    this.stats.held++;
    this.holdUntil = Math.max(this.holdUntil, performance.now() + ms);
    this.o.pubsub?.publish(this.channel, String(Date.now() + ms)).catch(() => {});
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length) {
        const held = this.holdUntil - performance.now();
        if (held > 0) {
          await this.sleep(held);
          continue;
        }
        let got;
        try {
          got = await this.o.limiter.take(this.o.bucket, { ratePerSec: this.o.ratePerSec, burst: 1 });
        } catch {
          // The coordinator is unreachable: no token, no request; ask again shortly.
          await this.sleep(200);
          continue;
        }
        if (!got.ok) {
          await this.sleep(Math.max(1, got.retryAfterMs));
          continue;
        }
        const w = this.queue.shift();
        if (!w) continue;
        this.stats.granted++;
        w.resolve();
      }
    } finally {
      this.running = false;
    }
  }
}
