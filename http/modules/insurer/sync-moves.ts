import type { Clock } from '../../../actors/clock.ts';
import type { RuntimeLogger } from '../../../actors/system.ts';
import type { Db } from '../../../storage/db.ts';
import { moveSyncsMany, type SyncMove } from '../../../storage/insurer/syncs.ts';

interface Pending {
  ids: string[];
  to: 'running' | 'retrying';
  attempts: number;
  failedRequests: number;
  error: string | null;
}

export interface SyncMoves {
  /**
   * A bulk sync started or failed a request: recorded with the next write (within `everyMs`).
   * Moves of the same syncs merge: the last status and error win, the requests add up.
   */
  queue(ids: string[], to: 'running' | 'retrying', opts?: { attempts?: number; failedRequests?: number; error?: string }): void;
  /**
   * The syncs are about to finish: what was queued for any of them and not yet written is handed back,
   * to be written with the outcome; a write of theirs under way is waited for first, so the
   * outcome is never overtaken.
   */
  take(ids: string[]): Promise<{ attempts: number; failedRequests: number }>;
  /** Writes what is queued (and waits for a write under way). */
  flush(): Promise<void>;
  /** Writes what is queued and stops the timer. */
  stop(): Promise<void>;
}

/**
 * The status moves of bulk syncs while they run (scheduled → running → retrying, with their
 * request counts), written together every `everyMs` in one statement instead of one statement
 * each: a bulk run makes thousands of them a minute. The outcome (done, cancelled_410, failed)
 * is still written with the patient's data, in its transaction; interactive syncs are written at
 * once, as someone watches them. A crash loses at most `everyMs` of moves: the syncs then show
 * an earlier status until their actor retries, and the run's request counts miss those requests.
 */
export function createSyncMoves({ db, clock, logger, everyMs = 200 }: { db: Db; clock: Clock; logger: RuntimeLogger; everyMs?: number }): SyncMoves {
  /** Keyed by the first sync id of each attempt. */
  let pending = new Map<string, Pending>();
  let writing: { keys: Set<string>; done: Promise<void> } | undefined;
  let timer: ReturnType<Clock['setTimeout']> | undefined;
  let stopped = false;

  const schedule = () => {
    if (timer === undefined && !stopped) timer = clock.setTimeout(() => ((timer = undefined), void write()), everyMs);
  };

  function merge(key: string, p: Pending): void {
    const had = pending.get(key);
    if (!had) pending.set(key, p);
    else {
      had.to = p.to;
      had.attempts += p.attempts;
      had.failedRequests += p.failedRequests;
      had.error = p.error ?? had.error;
    }
  }

  async function write(): Promise<void> {
    while (writing) await writing.done;
    if (!pending.size) return;
    const batch = pending;
    pending = new Map();
    const moves: SyncMove[] = [...batch.values()].map((p) => ({ ids: p.ids, to: p.to, attempts: p.attempts, failedRequests: p.failedRequests, error: p.error }));
    const done = moveSyncsMany(db, moves, clock.now()).catch((err: unknown) => {
      // Written with the next batch (or handed to the outcome); what came since merges in.
      const since = pending;
      pending = batch;
      for (const [key, p] of since) merge(key, p);
      logger.warn({ moves: moves.length, err: err instanceof Error ? err.message : String(err) }, 'could not record sync progress; will retry');
      schedule();
    });
    writing = { keys: new Set(batch.keys()), done };
    try {
      await done;
    } finally {
      writing = undefined;
    }
  }

  return {
    queue(ids, to, { attempts = 0, failedRequests = 0, error } = {}) {
      if (!ids.length) return;
      merge(ids[0]!, { ids, to, attempts, failedRequests, error: error ?? null });
      schedule();
    },
    async take(ids) {
      // An attempt may serve syncs an earlier attempt queued moves for (a bulk sync taken over
      // by an interactive one): what was queued under any of them is this outcome's to count.
      while (writing && ids.some((id) => writing!.keys.has(id))) await writing.done;
      const carried = { attempts: 0, failedRequests: 0 };
      for (const id of ids) {
        const p = pending.get(id);
        if (!p) continue;
        pending.delete(id);
        carried.attempts += p.attempts;
        carried.failedRequests += p.failedRequests;
      }
      return carried;
    },
    async flush() {
      if (timer !== undefined) {
        clock.clearTimeout(timer);
        timer = undefined;
      }
      await write();
      while (writing) await writing.done;
    },
    async stop() {
      stopped = true;
      await this.flush();
    },
  };
}
