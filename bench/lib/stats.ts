/** Nearest-rank percentile of an unsorted sample (0 for an empty one). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (!sorted.length) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface LatencySummary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

/** p50/p99/max of latencies in ms, rounded to 0.1 ms. */
export function summarize(values: number[]): LatencySummary {
  const sorted = Float64Array.from(values).sort();
  const r = (x: number) => Math.round(x * 10) / 10;
  return { n: sorted.length, p50: r(percentile(sorted, 50)), p99: r(percentile(sorted, 99)), max: r(sorted.length ? sorted[sorted.length - 1]! : 0) };
}

export function median(values: number[]): number {
  if (!values.length) return 0;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * The median of each numeric field across rounds (each field on its own, so the result is not
 * one particular round). Non-numeric fields come from the first round.
 */
export function medianOf<T extends object>(rounds: T[]): T {
  const out: Record<string, unknown> = { ...rounds[0] };
  for (const k of Object.keys(out)) {
    const vals = rounds.map((r) => (r as Record<string, unknown>)[k]);
    if (vals.every((v) => typeof v === 'number')) out[k] = round(median(vals as number[]));
    else if (vals.every((v) => v && typeof v === 'object' && !Array.isArray(v))) out[k] = medianOf(vals as object[]);
  }
  return out as T;
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
