/** What the practice-system simulator saw: one record per request, and counts over them. */

export interface PimsCall {
  /** `now()` at arrival: the simulator's (possibly controlled) clock. */
  at: number;
  /** `performance.now()` at arrival: real time, for rates. */
  wallAt: number;
  /** `X-Client-Id`, or `anonymous`. */
  client: string;
  /** The request path without the query, as sent (still URL-encoded). */
  path: string;
  /** The decoded visit id, on line-items requests. */
  visitId?: string;
  /**
   * The status the simulator answers with, decided at arrival; recorded even when the client
   * gives up during `latencyMs` and never reads it.
   */
  status: number;
}

export class PimsSimulatorStats {
  calls: PimsCall[] = [];

  record(call: PimsCall): void {
    this.calls.push(call);
  }

  /** How many line-items requests named this visit, whatever the answer. */
  byVisit(visitId: string): number {
    let n = 0;
    for (const c of this.calls) if (c.visitId === visitId) n++;
    return n;
  }

  /**
   * The most requests (of `client`, or of everyone) that arrived within any `windowMs` of real
   * time: a window `[t, t + windowMs)` slid over the arrivals. Tells whether callers kept to a
   * rate, e.g. `maxPerWindow(1000, 'sync') <= 10`.
   */
  maxPerWindow(windowMs: number, client?: string): number {
    const times = this.calls
      .filter((c) => client === undefined || c.client === client)
      .map((c) => c.wallAt)
      .sort((a, b) => a - b);
    let best = 0;
    let first = 0;
    for (let last = 0; last < times.length; last++) {
      while ((times[last] as number) - (times[first] as number) >= windowMs) first++;
      best = Math.max(best, last - first + 1);
    }
    return best;
  }

  reset(): void {
    this.calls = [];
  }
}
