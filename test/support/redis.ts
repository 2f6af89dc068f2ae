import { Redis } from 'ioredis';

/**
 * Removes every key under `prefix` (tests use a random prefix each; token counters never
 * expire by design, so tests remove their own keys, as a Redis restart without persistence would).
 */
export async function dropKeys(url: string, prefix: string): Promise<void> {
  const raw = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await raw.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await raw.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    raw.disconnect();
  }
}
