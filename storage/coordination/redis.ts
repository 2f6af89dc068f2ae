import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import {
  assertName,
  assertTtl,
  pollAcquire,
  resolveTake,
  type Coordination,
  type Lease,
  type Lock,
  type PubSub,
  type RateLimiter,
  type TakeResult,
} from './types.ts';

export interface RedisCoordinationOptions {
  url: string;
  /** Prepended to every key and channel; tests isolate by using a random one each. */
  keyPrefix?: string;
  /** Connection errors after startup (reconnects); commands still reject on their own. */
  onError?: (err: Error) => void;
}

/** The Lua scripts in ./lua, as ioredis registers them with defineCommand. */
interface Scripts {
  lockAcquire(lockKey: string, counterKey: string, ttlMs: number): Promise<unknown>;
  lockExtend(lockKey: string, token: string, ttlMs: number): Promise<unknown>;
  lockRelease(lockKey: string, token: string): Promise<unknown>;
  bucketTake(bucketKey: string, ratePerSec: number, burst: number, n: number): Promise<unknown>;
}

const scriptKeys: Record<keyof Scripts, { file: string; numberOfKeys: number }> = {
  lockAcquire: { file: 'lock-acquire.lua', numberOfKeys: 2 },
  lockExtend: { file: 'lock-extend.lua', numberOfKeys: 1 },
  lockRelease: { file: 'lock-release.lua', numberOfKeys: 1 },
  bucketTake: { file: 'bucket-take.lua', numberOfKeys: 1 },
};

/** The one place script replies become typed results; anything unexpected is a loud error. */
const decode = {
  acquire(reply: unknown): { token: number; expiresAt: number } | null {
    const [code, value] = ints<[number, number]>(reply, 2, 'lock-acquire');
    if (code >= 1) return { token: code, expiresAt: value };
    if (code === -1) return null;
    throw unexpected('lock-acquire', reply);
  },
  extend(reply: unknown): number | null {
    const [code, expiresAt] = ints<[number, number]>(reply, 2, 'lock-extend');
    if (code === 1) return expiresAt;
    if (code === 0) return null;
    throw unexpected('lock-extend', reply);
  },
  release(reply: unknown): boolean {
    if (reply === 1 || reply === 0) return reply === 1;
    throw unexpected('lock-release', reply);
  },
  take(reply: unknown): TakeResult {
    const [ok, retryAfterMs, remaining] = ints<[number, number, number]>(reply, 3, 'bucket-take');
    if (ok !== 0 && ok !== 1) throw unexpected('bucket-take', reply);
    return { ok: ok === 1, retryAfterMs, remaining };
  },
};

function ints<T extends number[]>(reply: unknown, length: T['length'], script: string): T {
  if (!Array.isArray(reply) || reply.length !== length || !reply.every(Number.isInteger)) {
    throw unexpected(script, reply);
  }
  return reply as T;
}

function unexpected(script: string, reply: unknown): Error {
  return new Error(`unexpected reply from ${script}.lua: ${JSON.stringify(reply)}`);
}

/** Connects both connections (commands, subscriptions) and loads the scripts; rejects if Redis is unreachable. */
export async function createRedisCoordination({
  url,
  keyPrefix = 'clinic-sync:',
  onError,
}: RedisCoordinationOptions): Promise<Coordination> {
  // Fail fast: a dead Redis should surface as an error within a second, not a hung request.
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
  const subscriber = client.duplicate();
  const connections = [client, subscriber];
  for (const [name, { file, numberOfKeys }] of Object.entries(scriptKeys)) {
    const lua = readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8');
    client.defineCommand(name, { lua, numberOfKeys });
  }
  const scripts = client as unknown as Scripts;

  // During startup the socket error (ECONNREFUSED...) says more than "Connection is closed".
  let startupError: Error | undefined;
  const remember = (err: Error) => void (startupError ??= err);
  for (const c of connections) c.on('error', remember);
  try {
    // One after the other: when Redis is down the subscriber never dials.
    await client.connect();
    await subscriber.connect();
    await client.ping();
  } catch (err) {
    for (const c of connections) c.disconnect();
    throw startupError ? new Error(startupError.message, { cause: err }) : err;
  }
  for (const c of connections) {
    c.off('error', remember);
    if (onError) c.on('error', onError);
  }

  const key = {
    lock: (name: string) => `${keyPrefix}lock:${name}`,
    counter: (name: string) => `${keyPrefix}lock-token:${name}`,
    bucket: (name: string) => `${keyPrefix}bucket:${name}`,
    channel: (name: string) => `${keyPrefix}channel:${name}`,
  };

  const lock: Lock = {
    async acquire(name, ttlMs) {
      assertName('lock name', name);
      assertTtl(ttlMs);
      const got = decode.acquire(await scripts.lockAcquire(key.lock(name), key.counter(name), ttlMs));
      if (!got) return null;
      const { token } = got;
      const lease: Lease = {
        name,
        token,
        expiresAt: got.expiresAt,
        async extend(ttl) {
          assertTtl(ttl);
          const expiresAt = decode.extend(await scripts.lockExtend(key.lock(name), String(token), ttl));
          if (expiresAt === null) return false;
          lease.expiresAt = expiresAt;
          return true;
        },
        async release() {
          return decode.release(await scripts.lockRelease(key.lock(name), String(token)));
        },
      };
      return lease;
    },
    acquireWait(name, ttlMs, waitMs) {
      return pollAcquire(() => lock.acquire(name, ttlMs), waitMs);
    },
    async check(name, token) {
      // A single GET is atomic; an expired key reads as missing.
      return (await client.get(key.lock(name))) === String(token);
    },
  };

  const rateLimiter: RateLimiter = {
    async take(name, opts) {
      assertName('bucket name', name);
      const n = resolveTake(opts);
      return decode.take(await scripts.bucketTake(key.bucket(name), opts.ratePerSec, opts.burst, n));
    },
  };

  // Local fan-out: one Redis subscription per channel, however many handlers share it.
  const handlers = new Map<string, Set<(message: string) => void>>();
  subscriber.on('message', function dispatch(channel: string, message: string) {
    for (const handler of handlers.get(channel) ?? []) queueMicrotask(() => handler(message));
  });

  const pubsub: PubSub = {
    async publish(channel, message) {
      assertName('channel', channel);
      await client.publish(key.channel(channel), message);
    },
    async subscribe(channel, handler) {
      assertName('channel', channel);
      const full = key.channel(channel);
      const entry = (message: string) => handler(message);
      let set = handlers.get(full);
      if (!set) handlers.set(full, (set = new Set()));
      set.add(entry);
      try {
        // Always awaited (Redis ignores a repeat), so a second subscriber also waits until it is live.
        await subscriber.subscribe(full);
      } catch (err) {
        set.delete(entry);
        throw err;
      }
      return async function unsubscribe() {
        if (!set.delete(entry) || set.size > 0) return;
        handlers.delete(full);
        await subscriber.unsubscribe(full);
      };
    },
  };

  let closing: Promise<void> | undefined;
  return {
    kind: 'redis',
    lock,
    rateLimiter,
    pubsub,
    async ping() {
      await client.ping();
    },
    close() {
      closing ??= Promise.all(connections.map((c) => c.quit())).then(() => {});
      return closing;
    },
  };
}
