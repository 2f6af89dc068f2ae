import { preciseNow } from '../../integrations/insurer/simulator-stats.ts';
import type { RecordedRequest } from '../../integrations/insurer/simulator.ts';
import { percentile, round } from './stats.ts';

/**
 * Records, on the simulator's clock, when each request to `baseUrl` was handed to fetch and when
 * the caller had its whole answer (body read, or the failure). Install before creating the
 * clients: the insurer client takes `globalThis.fetch` when it is created.
 */
export function traceFetch(baseUrl: string) {
  const calls: number[] = [];
  const done: number[] = [];
  const original = globalThis.fetch;
  globalThis.fetch = async function tracedFetch(input, init) {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (!url.startsWith(baseUrl)) return original(input, init);
    calls.push(preciseNow());
    let res: Response;
    try {
      res = await original(input, init);
    } catch (err) {
      done.push(preciseNow());
      throw err;
    }
    const text = res.text.bind(res);
    Object.defineProperty(res, 'text', {
      value: async function tracedText() {
        try {
          return await text();
        } finally {
          done.push(preciseNow());
        }
      },
    });
    return res;
  };
  return {
    calls,
    done,
    /** Forgets what was recorded (a new phase). */
    reset() {
      calls.length = 0;
      done.length = 0;
    },
    uninstall() {
      globalThis.fetch = original;
    },
  };
}

export interface GapBreakdown {
  gaps: number;
  /** p50 of each part, ms, in the same order. */
  p50: [number, number, number];
  /** Means, ms: answer handed to the socket → the client has it read; → the next request handed to fetch (the runtime between requests); of which in the line's acquire/release; fetch → the simulator sees it. */
  toClientMs: number;
  betweenMs: number;
  lineMs: number;
  toSimulatorMs: number;
}

/**
 * Splits each gap between consecutive requests the simulator saw (end of one → start of the
 * next) at the moments the client finished the first and handed the next to fetch. `lineCalls`
 * are [start, end] of the line's acquire/release, summed when they fall inside a gap.
 */
export function gapBreakdown(requests: readonly RecordedRequest[], trace: { calls: number[]; done: number[] }, lineCalls: [number, number][] = []): GapBreakdown {
  const sorted = [...requests].filter((r) => r.end !== undefined).sort((a, b) => a.start - b.start);
  const done = [...trace.done].sort((a, b) => a - b);
  const calls = [...trace.calls].sort((a, b) => a - b);
  const line = [...lineCalls].sort((a, b) => a[0] - b[0]);
  // First index with xs[i] >= t
  const lowerBound = (xs: number[], t: number) => {
    let lo = 0;
    let hi = xs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid]! < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  let n = 0;
  let toClient = 0;
  let between = 0;
  let inLine = 0;
  let toSim = 0;
  let li = 0;
  const parts: [number[], number[], number[]] = [[], [], []];
  for (let i = 0; i + 1 < sorted.length; i++) {
    const end = sorted[i]!.end!;
    const next = sorted[i + 1]!.start;
    if (next < end) continue;
    const d = done[lowerBound(done, end)];
    const c = calls[lowerBound(calls, next) - 1];
    if (d === undefined || c === undefined || d > next || c < d) continue;
    n++;
    toClient += d - end;
    between += c - d;
    toSim += next - c;
    parts[0].push(d - end);
    parts[1].push(c - d);
    parts[2].push(next - c);
    while (li < line.length && line[li]![0] < d) li++;
    for (let j = li; j < line.length && line[j]![0] < c; j++) inLine += Math.min(c, line[j]![1]) - line[j]![0];
  }
  const mean = (x: number) => round(n ? x / n : 0, 3);
  const p50 = (xs: number[]) => round(percentile(Float64Array.from(xs).sort(), 50), 3);
  return { gaps: n, p50: [p50(parts[0]), p50(parts[1]), p50(parts[2])], toClientMs: mean(toClient), betweenMs: mean(between), lineMs: mean(inLine), toSimulatorMs: mean(toSim) };
}
