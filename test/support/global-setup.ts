import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../storage/embedded.ts';
import { rmSync } from 'node:fs';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    databaseKind: 'external' | 'embedded';
    embeddedDatabaseUrl: string;
  }
}

let embedded: EmbeddedServer | undefined;
let dir = '';

/**
 * Tests run on the machine's PostgreSQL when DATABASE_URL is set (CI always sets it), and on
 * the embedded server otherwise. The embedded server is always started too, so the storage
 * suite also runs on it.
 */
export async function setup(project: TestProject): Promise<void> {
  // One cluster per run, so concurrent runs never share (or delete) each other's files.
  dir = `.tmp/test-embedded-${process.pid}`;
  rmSync(dir, { recursive: true, force: true });
  embedded = await startEmbeddedPostgres({ dataDir: dir });
  const external = process.env.DATABASE_URL;
  project.provide('databaseUrl', external ?? embedded.connectionString);
  project.provide('databaseKind', external ? 'external' : 'embedded');
  project.provide('embeddedDatabaseUrl', embedded.connectionString);
}

export async function teardown(): Promise<void> {
  await embedded?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
