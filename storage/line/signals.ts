import type { Redis } from 'ioredis';

/**
 * One subscriber connection, opened on the first `watch`, for the signals to held leases. It
 * resubscribes by itself after a reconnect; a signal published meanwhile is lost, which a pause
 * survives by repeating it and, at worst, waiting for the lease to expire.
 */
export function subscriber(client: Redis, onError: ((err: Error) => void) | undefined) {
  let sub: Redis | undefined;
  const handlers = new Map<string, Set<(message: string) => void>>();
  function connection(): Redis {
    if (sub) return sub;
    sub = client.duplicate({ lazyConnect: false });
    sub.on('error', (err: Error) => onError?.(err));
    sub.on('message', (channel: string, message: string) => {
      for (const handler of handlers.get(channel) ?? []) queueMicrotask(() => handler(message));
    });
    return sub;
  }
  return {
    async watch(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
      const conn = connection();
      let set = handlers.get(channel);
      if (!set) handlers.set(channel, (set = new Set()));
      set.add(handler);
      try {
        await conn.subscribe(channel);
      } catch (err) {
        set.delete(handler);
        throw err;
      }
      return async () => {
        set.delete(handler);
        if (set.size === 0 && handlers.get(channel) === set) {
          handlers.delete(channel);
          await conn.unsubscribe(channel).catch(() => {});
        }
      };
    },
    async close(): Promise<void> {
      await sub?.quit().catch(() => sub?.disconnect());
    },
  };
}
