import { readdirSync, readFileSync } from 'node:fs';

/** Prints the one machine-readable line a bench ends with (`grep ^BENCH_JSON`). */
export function benchJson(result: Record<string, unknown>): void {
  process.stdout.write(`BENCH_JSON ${JSON.stringify(result)}\n`);
}

export function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** VmRSS and VmHWM (peak) of a process, in MiB. */
export function procMemory(pid: number | 'self' = 'self'): { rssMb: number; peakRssMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { rssMb: Math.round(kb('VmRSS') / 1024), peakRssMb: Math.round(kb('VmHWM') / 1024) };
}

/** CPU time (user + system) a process has used so far, in ms; NaN once it is gone. */
export function procCpuMs(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return NaN;
  }
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** Busy and total jiffies of the whole machine, to tell how much of it a phase used. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Samples this process's RSS every `everyMs` and keeps the peak. */
export function rssSampler(everyMs = 200): { stop(): number; peakMb(): number } {
  let peak = process.memoryUsage().rss;
  const t = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, everyMs);
  t.unref();
  return {
    peakMb: () => Math.round(peak / 2 ** 20),
    stop() {
      clearInterval(t);
      peak = Math.max(peak, process.memoryUsage().rss);
      return Math.round(peak / 2 ** 20);
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Parent pid of a process (0 when it is gone). */
export function parentPid(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/**
 * CPU ms used so far by each process of a PostgreSQL cluster (the postmaster's children), by
 * pid. Diff two readings over the pids present in both: backends come and go.
 */
export function clusterCpu(postmasterPid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid !== postmasterPid && parentPid(pid) !== postmasterPid) continue;
    const ms = procCpuMs(pid);
    if (!Number.isNaN(ms)) out.set(pid, ms);
  }
  return out;
}

export function cpuDiffMs(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, ms] of after) sum += ms - (before.get(pid) ?? ms);
  return sum;
}
