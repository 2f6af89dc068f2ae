import type { Db, Session } from '../db.ts';
import { Handlers } from './handlers.ts';

export type LineSignal = 'stop' | 'want';

const RECONNECT_MS = 1_000;

/**
 * Signals to held leases over LISTEN/NOTIFY, one channel per schema (payload `signal:lineId`),
 * one listening connection per process, opened on the first `watch`. A signal sent while that
 * connection is down is lost: a pause survives it by repeating the signal and, at worst, waiting
 * for the lease to expire; the connection is opened again after a second.
 */
export function pgSignals(db: Db, onError?: (err: Error) => void) {
  const channel = `line_signals_${db.schema}`.slice(0, 63);
  const handlers = new Handlers<LineSignal>();
  let session: Promise<Session> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let closed = false;

  function listen(): Promise<Session> {
    session ??= (async () => {
      const s = await db.session();
      s.onNotification((_channel, payload) => {
        const colon = payload.indexOf(':');
        const signal = payload.slice(0, colon);
        if (signal !== 'stop' && signal !== 'want') return;
        handlers.dispatch(payload.slice(colon + 1), signal);
      });
      s.onLost((err) => {
        session = undefined;
        onError?.(err);
        if (!closed) retry = setTimeout(() => void listen().catch((e: Error) => onError?.(e)), RECONNECT_MS);
      });
      try {
        await s.query(`LISTEN "${channel}"`);
      } catch (err) {
        await s.close();
        throw err;
      }
      return s;
    })();
    session.catch(() => (session = undefined));
    return session;
  }

  return {
    /** Resolves once listening; the result stops `handler`. */
    async watch(lineId: string, handler: (signal: LineSignal) => void): Promise<() => Promise<void>> {
      await listen();
      const remove = handlers.add(lineId, handler);
      return async () => void remove();
    },
    /** Best-effort: a failure is reported, never thrown. */
    send(lineId: string, signal: LineSignal): void {
      db.query('SELECT pg_notify($1, $2)', [channel, `${signal}:${lineId}`]).catch((err: Error) => onError?.(err));
    },
    async close(): Promise<void> {
      closed = true;
      clearTimeout(retry);
      const s = await session?.catch(() => undefined);
      await s?.close();
    },
  };
}
