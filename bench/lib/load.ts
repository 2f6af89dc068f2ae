import { summarize, type LatencySummary } from './stats.ts';

export interface LoadResult {
  /** Operations that completed with 'ok' inside the measured window. */
  ok: number;
  eventsPerSec: number;
  latencyMs: LatencySummary;
  /** Other outcomes inside the window, by name (e.g. 'http 503', 'NotAcceptedError'). */
  other: Record<string, number>;
  /** This process's CPU use during the window, in percent of one core. */
  clientCpuPct: number;
}

/**
 * A closed loop: `concurrency` workers each run `op` back to back until the end. Operations
 * finishing in the warm-up are not counted; the window counts those that finish inside it.
 * `op` returns 'ok' or the name of another outcome.
 */
export async function closedLoop({
  concurrency,
  warmupMs,
  durationMs,
  op,
  window,
}: {
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  op: (worker: number, n: number) => Promise<string>;
  /** Called when the measured window opens and closes (e.g. to read another process's CPU). */
  window?: { open(): void; close(): void };
}): Promise<LoadResult> {
  const t0 = performance.now();
  const from = t0 + warmupMs;
  const to = from + durationMs;
  const latencies: number[] = [];
  const other: Record<string, number> = {};
  let ok = 0;
  let cpuAt: NodeJS.CpuUsage | undefined;
  let cpuEnd: NodeJS.CpuUsage | undefined;
  const open = () => {
    if (cpuAt) return;
    cpuAt = process.cpuUsage();
    window?.open();
  };
  const close = () => {
    if (cpuEnd) return;
    open();
    cpuEnd = process.cpuUsage(cpuAt);
    window?.close();
  };
  // Timers can fire late on a busy loop; the loop's own checks below open and close as well.
  const openTimer = setTimeout(open, warmupMs);
  const closeTimer = setTimeout(close, warmupMs + durationMs);

  async function worker(w: number): Promise<void> {
    for (let n = 0; ; n++) {
      const start = performance.now();
      if (start >= from) open();
      if (start >= to) return close();
      let outcome: string;
      try {
        outcome = await op(w, n);
      } catch (err) {
        outcome = err instanceof Error ? err.name : 'error';
      }
      const end = performance.now();
      if (end < from || end > to) continue;
      if (outcome === 'ok') {
        ok++;
        latencies.push(end - start);
      } else other[outcome] = (other[outcome] ?? 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  clearTimeout(openTimer);
  clearTimeout(closeTimer);
  close();
  const cpu = cpuEnd!;
  return {
    ok,
    eventsPerSec: Math.round(ok / (durationMs / 1000)),
    latencyMs: summarize(latencies),
    other,
    clientCpuPct: Math.round(((cpu.user + cpu.system) / 1000 / durationMs) * 100),
  };
}
