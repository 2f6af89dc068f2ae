/** The replies of the line's Lua scripts (./lua) as typed results, for storage/line/redis.ts. */
import { parseHolder } from './contract.ts';
import type { AcquireResult, PauseState } from './types.ts';

/** The control hash is missing or unconfirmed: resync the pause from Postgres, then retry. */
export const NOT_SYNCED = Symbol('not synced');
export type NotSynced = typeof NOT_SYNCED;

/** The one place script replies become typed results; anything unexpected is a loud error. */
export const decode = {
  take(reply: unknown, script: string): AcquireResult | NotSynced {
    if (Number.isSafeInteger(reply) && (reply as number) >= 1) return { ok: true, token: reply as number };
    if (reply === -1) return { ok: false, reason: 'busy' };
    if (reply === -2) return { ok: false, reason: 'paused' };
    if (reply === -3) return NOT_SYNCED;
    throw unexpected(script, reply);
  },
  released(reply: unknown): boolean {
    if (reply === 1 || reply === 0) return reply === 1;
    throw unexpected('line-release', reply);
  },
  confirmed(reply: unknown, script = 'line-confirm'): boolean {
    if (reply === 1 || reply === 0) return reply === 1;
    throw unexpected(script, reply);
  },
  /** line-lease: null when there is no lease. */
  lease(reply: unknown): { token: string; held: boolean; stopped: boolean; holder: string; leftMs: number } | null {
    if (!Array.isArray(reply) || reply.length !== 5 || !Number.isInteger(reply[4])) throw unexpected('line-lease', reply);
    const [token, held, stopped, holder, leftMs] = reply as [string, string, string, string, number];
    if (leftMs === -2 || token === '') return null;
    return { token, held: held === '1', stopped: stopped === '1', holder, leftMs };
  },
  /** line-apply and line-state: {ready, paused, reason, pausedAt, pausedBy, holder}. */
  state(reply: unknown, script: string): { ready: boolean; state: PauseState } {
    if (!Array.isArray(reply) || reply.length !== 6) throw unexpected(script, reply);
    const [ready, paused, reason, pausedAt, pausedBy, holder] = reply as unknown[];
    if ((ready !== 0 && ready !== 1) || ![paused, reason, pausedAt, pausedBy, holder].every((v) => typeof v === 'string')) {
      throw unexpected(script, reply);
    }
    const text = (v: unknown) => (v === '' ? null : (v as string));
    return {
      ready: ready === 1,
      state: {
        paused: paused === '1',
        reason: text(reason),
        pausedAt: pausedAt === '' ? null : Number(pausedAt),
        pausedBy: text(pausedBy),
        inFlight: parseHolder(holder),
      },
    };
  },
};

function unexpected(script: string, reply: unknown): Error {
  return new Error(`unexpected reply from ${script}.lua: ${JSON.stringify(reply)}`);
}

