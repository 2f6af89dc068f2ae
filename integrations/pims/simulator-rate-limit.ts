/**
 * Per-client token buckets, the way API gateways commonly limit: a client may burst up to
 * `max(1, rate)` requests, then gets one more every `1 / rate` seconds.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  /**
   * Takes one token for `client` at real time `t` (ms). Returns 0 when the request may go
   * ahead, else how many ms until a token is free. The rate is read per call, so changing it
   * at run time applies at once; a new client starts with a full bucket.
   */
  take(client: string, ratePerSec: number, t: number): number {
    if (ratePerSec === Infinity) return 0;
    const burst = Math.max(1, ratePerSec);
    const bucket = this.buckets.get(client) ?? { tokens: burst, at: t };
    bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.at) * ratePerSec) / 1000);
    bucket.at = t;
    this.buckets.set(client, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return ((1 - bucket.tokens) * 1000) / ratePerSec;
  }
}
