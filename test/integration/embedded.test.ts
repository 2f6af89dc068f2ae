import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { socketDirFor, startEmbeddedPostgres, type EmbeddedServer } from '../../storage/embedded.ts';
import { withClient } from '../support/pgdb.ts';

/** Where a connection came from, as the server saw it: null for a Unix socket. */
const clientAddr = (url: string) => withClient(url, async (c) => (await c.query<{ addr: string | null }>('SELECT inet_client_addr()::text AS addr')).rows[0]!.addr);

describe('embedded PostgreSQL connections', () => {
  it('the app connects through the Unix socket in the cluster directory; 127.0.0.1 answers too', async () => {
    const url = inject('embeddedDatabaseUrl');
    const tcp = new URL(url);
    tcp.search = '';
    expect(await clientAddr(tcp.toString())).toBe('127.0.0.1/32');
    const setting = (name: string) => withClient(url, async (c) => (await c.query<{ v: string }>('SELECT current_setting($1) AS v', [name])).rows[0]!.v);
    // Where this checkout lives decides whether a socket fits; either way the URL must agree.
    const expected = socketDirFor(await setting('data_directory'), Number(tcp.port));
    expect(new URL(url).searchParams.get('host') ?? undefined).toBe(expected);
    expect(await setting('unix_socket_directories')).toBe(expected ?? '');
    expect(await clientAddr(url)).toBe(expected ? null : '127.0.0.1/32');
  });

  it('keeps the socket only where its path fits and the setting can hold it', () => {
    expect(socketDirFor('/srv/app/data/pg', 5432)).toBe('/srv/app/data/pg');
    // 103 bytes of path at most (macOS; Linux allows 107): '/' + 87 + '/.s.PGSQL.54321' is 103.
    expect(socketDirFor(`/${'d'.repeat(87)}`, 54321)).toBe(`/${'d'.repeat(87)}`);
    expect(socketDirFor(`/${'d'.repeat(88)}`, 54321)).toBeUndefined();
    expect(socketDirFor('/srv/my data/pg', 5432)).toBeUndefined();
    expect(socketDirFor('/srv/a,b/pg', 5432)).toBeUndefined();
  });

  describe('a directory where the socket cannot be made', () => {
    const servers: EmbeddedServer[] = [];
    const dir = path.resolve(`.tmp/embedded-nosock-${process.pid}`);
    afterEach(async () => {
      for (const s of servers.splice(0)) await s.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('starts again without a socket and connects over TCP', async () => {
      const first = await startEmbeddedPostgres({ dataDir: dir });
      servers.push(first);
      expect(first.socketDir).toBeDefined();
      await first.stop();
      servers.pop();
      // What bind() then meets at the socket's path, as on a file system without sockets.
      mkdirSync(path.join(first.dataDir, `.s.PGSQL.${first.port}`));
      const logs: string[] = [];
      const second = await startEmbeddedPostgres({ dataDir: dir, port: first.port, onLog: (l) => logs.push(l) });
      servers.push(second);
      expect(second.socketDir).toBeUndefined();
      expect(new URL(second.connectionString).searchParams.has('host')).toBe(false);
      expect(await clientAddr(second.connectionString)).toBe('127.0.0.1/32');
      expect(logs.join('\n')).toMatch(/no Unix socket in .*connecting over TCP/);
    });
  });

  describe('a data directory too deep for a socket', () => {
    let server: EmbeddedServer | undefined;
    const dir = path.resolve(`.tmp/embedded-${process.pid}-${'deep'.repeat(20)}`);
    afterEach(async () => {
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('starts without one and connects over TCP', async () => {
      server = await startEmbeddedPostgres({ dataDir: dir });
      expect(server.socketDir).toBeUndefined();
      expect(new URL(server.connectionString).searchParams.has('host')).toBe(false);
      expect(await clientAddr(server.connectionString)).toBe('127.0.0.1/32');
      const client = new pg.Client({ connectionString: server.connectionString });
      await client.connect();
      expect((await client.query(`SELECT current_setting('unix_socket_directories') AS d`)).rows[0].d).toBe('');
      await client.end();
    });
  });
});
