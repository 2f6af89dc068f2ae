import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeConfig } from '../../http/config.ts';
import { startCommand } from '../support/start-command.ts';

describe('README', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  it('lists every configuration variable with its default', () => {
    for (const row of describeConfig()) {
      const def = row.default === '(unset)' ? '(unset)' : `\`${row.default}\``;
      expect(readme).toContain(`| \`${row.name}\` | ${def} |`);
    }
  });

  it('the Dockerfile runs the server as npm start does', () => {
    const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
    const { nodeArgs, script } = startCommand();
    expect(JSON.parse(cmd ?? 'null')).toEqual(['node', ...nodeArgs, script]);
  });

  it('has a two-command quick start', () => {
    const block = /## Quick start\s+```sh\n([\s\S]*?)```/.exec(readme)?.[1]?.trim().split('\n');
    expect(block).toEqual(['npm install && npm start', 'npm test']);
  });
});
