import type { RecordedRequest } from '../../integrations/insurer/simulator.ts';
import { round, summarize, type LatencySummary } from './stats.ts';

export interface LineUsage {
  requests: number;
  /** By what the simulator answered: status code, `reset`, `timeout`, `aborted`. */
  byStatus: Record<string, number>;
  byKind: Record<string, number>;
  /** Mean of end − start over the requests that ended in the window, ms. */
  meanRequestMs: number;
  /** Time with exactly one request in flight ÷ window, by tenth of the window. */
  utilisationByTenth: number[];
  /** From the end of one request to the start of the next (0 when they overlap), ms. */
  gapMs: LatencySummary & { mean: number };
  /** Idle time ÷ window, by the length of the gap it was in (`<1`, `1-2`, ... `>=100` ms). */
  idleByGap: Record<string, number>;
}

const GAP_BOUNDS = [1, 2, 5, 20, 100];

function gapBucket(ms: number): string {
  const i = GAP_BOUNDS.findIndex((b) => ms < b);
  if (i < 0) return `>=${GAP_BOUNDS.at(-1)}`;
  return i === 0 ? `<${GAP_BOUNDS[0]}` : `${GAP_BOUNDS[i - 1]}-${GAP_BOUNDS[i]}`;
}

/**
 * What one insurer line did over `[t0, t1]` (ms on the simulator's clock,
 * `performance.timeOrigin + performance.now()`), from the requests the simulator recorded:
 * a sweep over their starts and ends, so any slice of the window can be read. Requests still
 * in flight at `t1` count as ending there.
 */
export function lineUsage(requests: readonly RecordedRequest[], t0: number, t1: number, slices = 10): LineUsage {
  const inWindow = requests.filter((r) => r.start <= t1 && (r.end ?? t1) >= t0);
  const byStatus: Record<string, number> = {};
  const byKind: Record<string, number> = {};
  let ended = 0;
  let sum = 0;
  for (const r of inWindow) {
    byStatus[String(r.status ?? 'in flight')] = (byStatus[String(r.status ?? 'in flight')] ?? 0) + 1;
    byKind[r.kind] = (byKind[r.kind] ?? 0) + 1;
    if (r.end !== undefined) {
      ended++;
      sum += r.end - r.start;
    }
  }

  // +1 at each start, −1 at each end; time spent at exactly one is credited to its slices.
  const edges: [number, number][] = [];
  for (const r of inWindow) edges.push([Math.max(t0, r.start), 1], [Math.min(t1, r.end ?? t1), -1]);
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const width = (t1 - t0) / slices;
  const single = new Array<number>(slices).fill(0);
  const credit = (from: number, to: number) => {
    for (let s = Math.max(0, Math.floor((from - t0) / width)); s < slices && from < to; s++) {
      const end = Math.min(to, t0 + (s + 1) * width);
      single[s]! += Math.max(0, end - from);
      from = end;
    }
  };
  let level = 0;
  let at = t0;
  for (const [t, d] of edges) {
    if (level === 1) credit(at, t);
    level += d;
    at = t;
  }

  const sorted = [...inWindow].sort((a, b) => a.start - b.start);
  const gaps: number[] = [];
  for (let i = 1; i < sorted.length; i++) gaps.push(Math.max(0, sorted[i]!.start - (sorted[i - 1]!.end ?? t1)));
  const gapSum = gaps.reduce((a, b) => a + b, 0);
  const idle: Record<string, number> = {};
  for (const g of gaps) idle[gapBucket(g)] = (idle[gapBucket(g)] ?? 0) + g;
  const idleByGap = Object.fromEntries(Object.entries(idle).map(([k, ms]) => [k, round(ms / (t1 - t0), 3)]));
  return {
    requests: inWindow.length,
    byStatus,
    byKind,
    meanRequestMs: round(ended ? sum / ended : 0, 3),
    utilisationByTenth: single.map((ms) => round(ms / width, 3)),
    gapMs: { ...summarize(gaps), mean: round(gaps.length ? gapSum / gaps.length : 0, 3) },
    idleByGap,
  };
}
