import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freshStorage, killAllServers, startServer, type TestStorage } from '../support/server.ts';

/**
 * Ctrl-C on `npm start`: the terminal sends SIGINT to the whole foreground process group, the
 * app and its embedded PostgreSQL alike. The app must still drain into its database and stop
 * it last: exit 0, "stopped" logged, the cluster shut down cleanly, and every acknowledged
 * event there after a restart. Clients that keep sending on kept-alive connections must not
 * hold it open: one of them sends each body slowly, so its connection is never idle.
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

    // Headers the server sets on the Node response, merged into whatever the route answers.
    const first = await server.fetch('/actors/tally/S-0/events', { method: 'POST', body: JSON.stringify({ type: 'add', id: 'first', amount: 1 }), headers: { 'x-request-id': 'given-1' } });
    expect(first.status).toBe(202);
    expect(first.headers.get('location')).toBe('/actors/tally/S-0');
    expect(first.headers.get('x-request-id')).toBe('given-1');
    expect(first.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await first.json()).toMatchObject({ seq: 1, duplicate: false });
    const missing = await server.fetch('/actors/nope/x/events', { method: 'POST', body: '{"type":"add"}' });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(missing.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    await missing.body?.cancel();

    // Twenty senders, each adding 1 to its own tally until the server stops answering.
    const acked = new Map<string, number>([['S-0', 1]]);
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
    const slow = slowSender(server.url, server.token, () => sending);
    while ([...acked.values()].reduce((a, b) => a + b, 0) < 400) await new Promise((r) => setTimeout(r, 10));

    const signalled = performance.now();
    const code = await server.signalGroup('SIGINT');
    const stopMs = performance.now() - signalled;
    sending = false;
    await Promise.all(senders);
    const slowAnswers = await slow;
    expect(slowAnswers.ok, 'the slow sender was answered before the signal').toBeGreaterThan(0);
    expect(stopMs, 'from SIGINT to exit').toBeLessThan(8_000);
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

/**
 * Posts events on one kept-alive connection, each body sent 150 ms after its headers, until
 * `go()` turns false or the server closes the connection. Resolves with the 202s it got.
 */
function slowSender(url: string, token: string, go: () => boolean): Promise<{ ok: number }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let ok = 0;
    let n = 0;
    let received = '';
    const next = () => {
      if (!go()) return socket.end();
      const body = JSON.stringify({ type: 'add', id: `slow-${n++}`, amount: 1 });
      socket.write(`POST /actors/tally/SLOW/events HTTP/1.1\r\nhost: ${hostname}\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`);
      setTimeout(() => socket.writable && socket.write(body), 150);
    };
    socket.on('connect', next);
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      // Each answer is small and whole: its headers end the chunk with the body after them.
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return;
      const length = Number(/content-length: (\d+)/i.exec(received.slice(0, end))?.[1] ?? 0);
      if (received.length < end + 4 + length) return;
      if (received.startsWith('HTTP/1.1 202')) ok++;
      received = received.slice(end + 4 + length);
      next();
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve({ ok }));
  });
}
