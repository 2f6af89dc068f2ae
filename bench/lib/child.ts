import { spawn } from 'node:child_process';
import { startCommand } from '../../test/support/start-command.ts';
import { onInterrupt } from './cleanup.ts';

/**
 * Runs one bench script in its own Node process (a clean heap and RSS for each), echoing its
 * output with an indent, and resolves with the object from its `BENCH_JSON` line.
 */
export function runBench(script: string, args: string[], { nodeArgs = [], indent = '  ' }: { nodeArgs?: string[]; indent?: string } = {}): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    // The Node and V8 flags of `npm start` (among them `--import tsx`), so a runtime measured in
    // this process is tuned as the server's is.
    const child = spawn(process.execPath, [...startCommand().nodeArgs, ...nodeArgs, script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let json: Record<string, unknown> | undefined;
    let rest = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      rest += chunk;
      const lines = rest.split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('BENCH_JSON ')) json = JSON.parse(line.slice('BENCH_JSON '.length)) as Record<string, unknown>;
        else process.stdout.write(`${indent}${line}\n`);
      }
    });
    // Interrupted: let the child clean up after itself (it handles SIGTERM), then go.
    const forget = onInterrupt(
      () =>
        new Promise<void>((done) => {
          child.once('exit', () => done());
          child.kill('SIGTERM');
        }),
    );
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      forget();
      if (code === 0 && json) resolve(json);
      else reject(new Error(`${script} ${args.join(' ')} failed (${signal ?? `exit ${code}`})${json ? '' : ', no BENCH_JSON line'}`));
    });
  });
}
