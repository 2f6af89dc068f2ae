import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freshStorage, killAllServers, startServer, type TestStorage } from '../support/server.ts';

/**
 * Ctrl-C on `npm start`: the terminal sends SIGINT to the whole foreground process group, the
 * app and its embedded PostgreSQL alike. The app must still drain into its database and stop
 * it last: exit 0, "stopped" logged, the cluster shut down cleanly, and every acknowledged
 * event there after a restart.
 */

interface TallyView {
  context: { total: number; count: number };
  processedSeq: number;
}

let storage: TestStorage | undefined;

afterEach(async () => {
  await killAllServers();
  await storage?.cleanup();
  storage = undefined;
});

describe('Ctrl-C on a server with embedded PostgreSQL', () => {
  it('drains while senders are still sending, stops PostgreSQL last, and exits 0 with nothing acknowledged lost', async () => {
    storage = await freshStorage('embedded');
    if (storage.storage.kind !== 'embedded') throw new Error('embedded storage expected');
    const dataDir = storage.storage.dataDir;
    const server = await startServer(storage.storage, { ownGroup: true, env: { LOG_LEVEL: 'info' } });

    // Twenty senders, each adding 1 to its own tally until the server stops answering.
    const acked = new Map<string, number>();
    let sending = true;
    const senders = Array.from({ length: 20 }, async (_, i) => {
      const key = `S-${i}`;
      for (let n = 0; sending; n++) {
        try {
          const res = await server.fetch(`/actors/tally/${key}/events`, { method: 'POST', body: JSON.stringify({ type: 'add', id: `e${n}`, amount: 1 }) });
          if (res.status !== 202) break;
          await res.body?.cancel();
          acked.set(key, (acked.get(key) ?? 0) + 1);
        } catch {
          break; // the server went away mid-request: not acknowledged
        }
      }
    });
    while ([...acked.values()].reduce((a, b) => a + b, 0) < 400) await new Promise((r) => setTimeout(r, 10));

    const code = await server.signalGroup('SIGINT');
    sending = false;
    await Promise.all(senders);
    const output = server.output();
    expect(code, output).toBe(0);
    expect(output).toContain('"msg":"stopped"');
    expect(output).not.toContain('unclean shutdown');
    // A clean shutdown of PostgreSQL removes its pid file; a killed one leaves it behind.
    expect(existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'postmaster.pid left behind').toBe(false);

    const again = await startServer(storage.storage);
    for (const [key, n] of acked) {
      const res = await again.fetch(`/actors/tally/${key}`);
      expect(res.status).toBe(200);
      const view = (await res.json()) as TallyView;
      // Every acknowledged add is in the state; an unacknowledged one may be too (it committed,
      // its answer did not arrive), but none twice: the tally records each entry id once.
      expect(view.context.total, `tally/${key}`).toBeGreaterThanOrEqual(n);
      expect(view.context.total, `tally/${key}`).toBeLessThanOrEqual(n + 1);
    }
    expect(await again.stop()).toBe(0);
  }, 120_000);
});
