import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { round } from './stats.ts';

export interface GcPauses {
  /** Full (mark-compact) collections: count, longest and total pause on the main thread. */
  major: { n: number; maxMs: number; totalMs: number };
  /** Young-generation collections (scavenges). */
  minor: { n: number; maxMs: number; totalMs: number };
}

/**
 * Records this process's GC pauses until `stop()`, so a lateness spike can be told apart from
 * a collection: V8 reports each pause it made the main thread take, by kind.
 */
export function watchGc(): { stop(): GcPauses } {
  const pauses: GcPauses = { major: { n: 0, maxMs: 0, totalMs: 0 }, minor: { n: 0, maxMs: 0, totalMs: 0 } };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      const into = kind === constants.NODE_PERFORMANCE_GC_MAJOR ? pauses.major : kind === constants.NODE_PERFORMANCE_GC_MINOR ? pauses.minor : undefined;
      if (!into) continue;
      into.n++;
      into.maxMs = Math.max(into.maxMs, entry.duration);
      into.totalMs += entry.duration;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    stop() {
      observer.disconnect();
      for (const p of [pauses.major, pauses.minor]) {
        p.maxMs = round(p.maxMs);
        p.totalMs = round(p.totalMs);
      }
      return pauses;
    },
  };
}
