import { clusterCpu, cpuDiffMs, machineCpu, procCpuMs } from './report.ts';

export interface CpuFigures {
  /** Percent of one core used by the named processes (`server`, …) over the window. */
  [name: string]: number;
}

/**
 * CPU used during a measured window by other processes: named ones (the server), the PostgreSQL
 * cluster (postmaster and its children), and the whole machine (busy % of all cores). The
 * machine figure shows how much of the 2 cores went to anything else running at the time.
 */
export function cpuMeter({ pids = {}, postmaster }: { pids?: Record<string, number>; postmaster?: number }) {
  let t0 = 0;
  let t1 = 0;
  let m0 = machineCpu();
  let m1 = m0;
  let named0: Record<string, number> = {};
  let named1: Record<string, number> = {};
  let pg0 = new Map<number, number>();
  let pg1 = pg0;
  const readNamed = () => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, procCpuMs(pid)]));
  return {
    open(): void {
      t0 = performance.now();
      m0 = machineCpu();
      named0 = readNamed();
      if (postmaster) pg0 = clusterCpu(postmaster);
    },
    close(): void {
      t1 = performance.now();
      m1 = machineCpu();
      named1 = readNamed();
      if (postmaster) pg1 = clusterCpu(postmaster);
    },
    figures(): CpuFigures {
      const ms = Math.max(1, t1 - t0);
      const pct = (cpuMs: number) => Math.round((cpuMs / ms) * 100);
      const out: CpuFigures = {};
      for (const k of Object.keys(pids)) out[`${k}CpuPct`] = pct((named1[k] ?? 0) - (named0[k] ?? 0));
      if (postmaster) out.pgCpuPct = pct(cpuDiffMs(pg0, pg1));
      out.machineBusyPct = Math.round(((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * 100);
      return out;
    },
  };
}
