import { rmSync } from 'node:fs';
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
    const socketDir = new URL(url).searchParams.get('host');
    expect(socketDir).toMatch(/\/pg$/);
    expect(await clientAddr(url)).toBeNull();
    const tcp = new URL(url);
    tcp.search = '';
    expect(await clientAddr(tcp.toString())).toBe('127.0.0.1/32');
    const dirs = await withClient(url, async (c) => (await c.query<{ d: string }>(`SELECT current_setting('unix_socket_directories') AS d`)).rows[0]!.d);
    expect(dirs).toBe(socketDir);
  });

  it('keeps the socket only where its path fits and the setting can hold it', () => {
    expect(socketDirFor('/srv/app/data/pg', 5432)).toBe('/srv/app/data/pg');
    // sockaddr_un holds 107 bytes of path: '/' + 86 + '/.s.PGSQL.54321' is 102, + 10 is 112.
    expect(socketDirFor(`/${'d'.repeat(86)}`, 54321)).toBe(`/${'d'.repeat(86)}`);
    expect(socketDirFor(`/${'d'.repeat(96)}`, 54321)).toBeUndefined();
    expect(socketDirFor('/srv/my data/pg', 5432)).toBeUndefined();
    expect(socketDirFor('/srv/a,b/pg', 5432)).toBeUndefined();
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
