import { preciseNow } from '../../integrations/insurer/simulator-stats.ts';
import type { AcquireResult, Line } from '../../storage/line/index.ts';
import { round, summarize, type LatencySummary } from './stats.ts';

export interface LineCounters {
  /** Wall time of each acquire, release and renew (a handoff to the next holder is one release), ms. */
  callMs: number[];
  /** [start, end] of each, on the simulator's clock (`preciseNow`). */
  spans: [number, number][];
  refusedBusy: number;
  refusedPaused: number;
}

/** Wraps a Line to time its acquire, release and renew round trips and count refusals (nothing else changes). */
export function instrumentLine(line: Line): { line: Line; counters: LineCounters; summary(wallMs: number): LineCallSummary } {
  const counters: LineCounters = { callMs: [], spans: [], refusedBusy: 0, refusedPaused: 0 };
  const count = (r: AcquireResult | null) => {
    if (r && !r.ok) r.reason === 'busy' ? counters.refusedBusy++ : counters.refusedPaused++;
    return r;
  };
  async function timed<T extends AcquireResult | null>(call: () => Promise<T>): Promise<T> {
    const t0 = preciseNow();
    try {
      return count(await call()) as T;
    } finally {
      const t1 = preciseNow();
      counters.callMs.push(t1 - t0);
      counters.spans.push([t0, t1]);
    }
  }
  const wrapped: Line = {
    kind: line.kind,
    acquire: (lineId, holder, ttlMs, opts) => timed(() => line.acquire(lineId, holder, ttlMs, opts)),
    release: (lineId, token, next) => timed(() => line.release(lineId, token, next)),
    ...(line.renew ? { renew: (lineId: string, token: number, next: Parameters<NonNullable<Line['renew']>>[2]) => timed(() => line.renew!(lineId, token, next)) } : {}),
    // Signals and records of a held lease are not waited for before a request: not timed.
    ...(line.hold ? { hold: line.hold } : {}),
    pause: (lineId, reason, by) => line.pause(lineId, reason, by),
    resume: (lineId) => line.resume(lineId),
    state: (lineId) => line.state(lineId),
    close: () => line.close(),
  };
  return {
    line: wrapped,
    counters,
    summary(wallMs) {
      const total = counters.callMs.reduce((a, b) => a + b, 0);
      return { calls: summarize(counters.callMs), shareOfWall: round(total / Math.max(1, wallMs), 3), refusedBusy: counters.refusedBusy, refusedPaused: counters.refusedPaused };
    },
  };
}

export interface LineCallSummary {
  calls: LatencySummary;
  /** Sum of acquire/release time ÷ wall time: how much of the run the line's own store took. */
  shareOfWall: number;
  refusedBusy: number;
  refusedPaused: number;
}
