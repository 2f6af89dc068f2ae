import type { Db } from '../../../storage/db.ts';
import { queuedElsewhere } from '../../../storage/insurer/queues.ts';
import { latestRun } from '../../../storage/insurer/runs.ts';
import type { Line } from '../../../storage/line/types.ts';
import type { InsurerHandle } from './module.ts';
import { lineId } from './module.ts';
import { iso } from '../../request.ts';

/**
 * A run's progress from counters kept with every status change: indexed reads, no scan of
 * patients, whatever the run's size. `waiting` is the line's queue over the whole cluster:
 * this process's as it is, the others' as they last recorded it.
 */
export async function progress(db: Db, line: Line, h: InsurerHandle, now: number) {
  const [run, pause, elsewhere] = await Promise.all([latestRun(db, h.settings.id), line.state(lineId(h.settings.id)), queuedElsewhere(db, h.settings.id, h.node)]);
  const own = h.line.waiting;
  const counts = run?.counts;
  const open = counts ? counts.scheduled + counts.running + counts.retrying : 0;
  const finished = counts ? counts.done + counts.cancelled_410 + counts.failed : 0;
  const elapsedS = run ? Math.max(0.001, ((run.finishedAt ?? now) - run.startedAt) / 1000) : 0;
  const active = run && (run.state === 'listing' || run.state === 'syncing');
  // Remaining patient syncs at the rate finished ones went; unknown while still listing.
  const etaSeconds = active && run.listingDone && finished > 0 ? Math.round((open * elapsedS) / finished) : null;
  return {
    insurerId: h.settings.id,
    runId: run?.id ?? null,
    trigger: run?.trigger ?? null,
    state: pause.paused ? 'paused' : (run?.state ?? 'idle'),
    runState: run?.state ?? 'idle',
    startedAt: iso(run?.startedAt),
    finishedAt: iso(run?.finishedAt),
    counts: {
      listed: run?.listed ?? 0,
      new: run?.newPatients ?? 0,
      removed: run?.removed ?? 0,
      synced: counts?.done ?? 0,
      pending: counts ? counts.scheduled + counts.running : 0,
      retrying: counts?.retrying ?? 0,
      cancelled_410: counts?.cancelled_410 ?? 0,
      failed: counts?.failed ?? 0,
    },
    requests: {
      made: run?.requestsMade ?? 0,
      failed: run?.requestsFailed ?? 0,
      inFlight: pause.inFlight ? 1 : 0,
      perSecond: run ? Math.round((run.requestsMade / elapsedS) * 10) / 10 : 0,
    },
    pause: { paused: pause.paused, reason: pause.reason, pausedAt: iso(pause.pausedAt), pausedBy: pause.pausedBy },
    waiting: { interactive: own.interactive + elsewhere.interactive, listing: own.listing + elsewhere.listing, bulk: own.bulk + elsewhere.bulk },
    lastError: run?.lastError ?? null,
    etaSeconds,
  };
}
