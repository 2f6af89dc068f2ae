import { readFileSync } from 'node:fs';

/**
 * The server's command line as `npm start` runs it, read from package.json, so the tests and the
 * benches run the server (and the benches the runtime) with the same Node and V8 flags as
 * production: `node <nodeArgs...> <script>`.
 */
export function startCommand(): { nodeArgs: string[]; script: string } {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } };
  const words = pkg.scripts.start.trim().split(/\s+/);
  const script = words.at(-1)!;
  if (words[0] !== 'node' || !script.endsWith('.ts')) throw new Error(`the start script must be 'node [flags] <file.ts>', not '${pkg.scripts.start}'`);
  return { nodeArgs: words.slice(1, -1), script };
}
