import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeConfig } from '../../http/config.ts';

describe('README', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  it('lists every configuration variable with its default', () => {
    for (const row of describeConfig()) {
      const def = row.default === '(unset)' ? '(unset)' : `\`${row.default}\``;
      expect(readme).toContain(`| \`${row.name}\` | ${def} |`);
    }
  });

  it('has a two-command quick start', () => {
    const block = /## Quick start\s+```sh\n([\s\S]*?)```/.exec(readme)?.[1]?.trim().split('\n');
    expect(block).toEqual(['npm install && npm start', 'npm test']);
  });
});
