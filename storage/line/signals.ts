import type { Redis } from 'ioredis';
import { Handlers } from './handlers.ts';

/**
 * One subscriber connection, opened on the first `watch`, for the signals to held leases. It
 * resubscribes by itself after a reconnect; a signal published meanwhile is lost, which a pause
 * survives by repeating it and, at worst, waiting for the lease to expire.
 */
export function subscriber(client: Redis, onError: ((err: Error) => void) | undefined) {
  let sub: Redis | undefined;
  const handlers = new Handlers<string>();
  function connection(): Redis {
    if (sub) return sub;
    sub = client.duplicate({ lazyConnect: false });
    sub.on('error', (err: Error) => onError?.(err));
    sub.on('message', (channel: string, message: string) => {
      handlers.dispatch(channel, message);
    });
    return sub;
  }
  return {
    async watch(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
      const conn = connection();
      const remove = handlers.add(channel, handler);
      try {
        await conn.subscribe(channel);
      } catch (err) {
        remove();
        throw err;
      }
      return async () => {
        if (remove()) await conn.unsubscribe(channel).catch(() => {});
      };
    },
    async close(): Promise<void> {
      await sub?.quit().catch(() => sub?.disconnect());
    },
  };
}
