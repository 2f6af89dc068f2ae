import { DEFAULT_VISIT_TIMING, visitTiming, type VisitContext } from '../../machines/visit.ts';
import { summarize, type LatencySummary } from './stats.ts';

/**
 * The age of a visit's line items when a reader asks, in simulated time, for two flows over the
 * same visits: the old one (one visit id popped off a queue every `popEveryMs`, refreshed if
 * older than the max age, the queue refilled with every id when empty) and ours (each visit on
 * its own timer: the visit machine's own delay function, plus a lateness drawn from what the real
 * run measured). Readers ask for a uniformly random visit at a uniformly random time, once both
 * flows are in their steady state.
 */
export interface AgeModel {
  visits: number;
  maxAgeMs: number;
  popEveryMs: number;
  readers: number;
  /** Measured lateness of our refreshes (ms), sampled at random; empty = on time. */
  lateness: number[];
  seed?: number;
}

export interface AgeFigures {
  old: LatencySummary;
  ours: LatencySummary;
  /** Simulated time the readers were spread over (ms). */
  windowMs: number;
}

export function visitAges(m: AgeModel): AgeFigures {
  const random = lcg(m.seed ?? 1);
  const cycle = m.visits * m.popEveryMs;
  // Steady state for both: from one full queue cycle on, over the next one.
  const from = Math.max(cycle, 10 * m.maxAgeMs);
  const windowMs = Math.max(cycle, 10 * m.maxAgeMs);
  const asks = Array.from({ length: m.readers }, () => ({ visit: Math.floor(random() * m.visits), at: from + random() * windowMs })).sort((a, b) => a.at - b.at);

  // Old flow: every visit fetched at 0 (its check-in, the best case); one pop every popEveryMs.
  const fetchedOld = new Float64Array(m.visits);
  const oldAges: number[] = [];
  let queue = 0;
  let t = 0;
  for (const ask of asks) {
    while (t + m.popEveryMs <= ask.at) {
      t += m.popEveryMs;
      const v = queue;
      queue = (queue + 1) % m.visits; // empty: refilled with every id, in the same order
      if (t - fetchedOld[v]! > m.maxAgeMs) fetchedOld[v] = t;
    }
    oldAges.push(ask.at - fetchedOld[ask.visit]!);
  }

  // Ours: each visit refreshes when the machine's delay says, late by a measured amount.
  const { refreshDelay } = visitTiming({ ...DEFAULT_VISIT_TIMING, maxAgeMs: m.maxAgeMs }).delays;
  const late = () => (m.lateness.length ? m.lateness[Math.floor(random() * m.lateness.length)]! : 0);
  const ours: number[] = [];
  const byVisit = new Map<number, number[]>();
  for (const ask of asks) {
    const list = byVisit.get(ask.visit) ?? [];
    list.push(ask.at);
    byVisit.set(ask.visit, list);
  }
  for (const [visit, times] of byVisit) {
    const context = { visitId: `V-${visit}`, fetches: 0 } as VisitContext;
    // Checked in at a random moment of the first max age.
    let fetchedAt = random() * m.maxAgeMs;
    for (const at of times) {
      for (;;) {
        const next = fetchedAt + refreshDelay({ context }) + Math.max(0, late());
        if (next > at) break;
        fetchedAt = next;
        context.fetches++;
      }
      ours.push(at - fetchedAt);
    }
  }
  return { old: summarize(oldAges), ours: summarize(ours), windowMs };
}

/** A small deterministic generator, so two runs model the same readers. */
function lcg(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
