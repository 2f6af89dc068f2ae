import { describe, expect, it } from 'vitest';
import type { AnyStateNode } from 'xstate';
import { assignerMaySpawn } from '../../actors/activation.ts';
import { tallyMachine } from '../../machines/tally.ts';

/**
 * An event to a resident actor is stepped before its commit only when the step cannot start an
 * effect; whether an `assign` may spawn is read from its assigner's source, erring on yes.
 */
const key = 'spawn';

describe('assignerMaySpawn', () => {
  it('says yes to an assigner that names spawn or takes its arguments whole', () => {
    const yes: Function[] = [
      ({ spawn }: { spawn: (src: string) => unknown }) => spawn('work'),
      ({ spawn: start }: { spawn: (src: string) => unknown }) => start('work'),
      (args: unknown) => args,
      (args: unknown) => ({ n: Object.keys(args as object).length }),
      ({ context, ...rest }: { context: unknown; spawn: unknown }) => [context, rest],
      function (this: unknown, args: unknown) {
        return args;
      },
      async function named(args: unknown) {
        return args;
      },
      // Bound: its source is not there to read.
      (({ context }: { context: number }) => context).bind(null),
      // Reaches its arguments without naming them.
      function ({ context }: { context: number }) {
        // eslint-disable-next-line prefer-rest-params
        return [context, arguments[0]];
      },
      // A computed key, or a string default that throws off reading the pattern.
      ({ [key]: start }: Record<string, (src: string) => unknown>) => start!('work'),
      ({ context = '}', ...rest }: { context?: string; spawn: unknown }) => [context, rest],
    ];
    for (const fn of yes) expect(assignerMaySpawn(fn), String(fn)).toBe(true);
  });

  it('says no to one that takes nothing or only named fields other than spawn', () => {
    const no: Function[] = [
      () => ({ n: 1 }),
      ({ context }: { context: { n: number } }) => ({ n: context.n + 1 }),
      ({ context, event }: { context: { n: number }; event: { by: number } }) => ({ n: context.n + event.by }),
      ({ event: { by } }: { event: { by: number } }) => ({ n: by }),
      ({ context }: { context: { n: number } }, params: number) => ({ n: context.n + params }),
      function ({ context }: { context: { n: number } }) {
        return { n: context.n };
      },
    ];
    for (const fn of no) expect(assignerMaySpawn(fn), String(fn)).toBe(false);
  });

  it("keeps the tally's steps on the fast path", () => {
    const assigners: Function[] = [];
    const visit = (node: AnyStateNode) => {
      for (const transitions of node.transitions.values())
        for (const t of transitions)
          for (const action of t.actions as { type?: string; assignment?: unknown }[])
            if (action?.type === 'xstate.assign') assigners.push(...(typeof action.assignment === 'function' ? [action.assignment] : Object.values(action.assignment as object).filter((v) => typeof v === 'function')));
      for (const child of Object.values(node.states)) visit(child);
    };
    visit(tallyMachine.root);
    expect(assigners.length).toBeGreaterThan(1);
    for (const fn of assigners) expect(assignerMaySpawn(fn), String(fn)).toBe(false);
  });
});
