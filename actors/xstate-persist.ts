import type { AnyActor, AnyMachineSnapshot } from 'xstate';

/**
 * The own keys of a machine snapshot in XState 5.33.3, in order (`createMachineSnapshot`).
 * `test/unit/xstate-persist.test.ts` fails if an upgrade changes them.
 */
export const SNAPSHOT_KEYS = ['status', 'output', 'error', 'machine', 'context', '_nodes', 'value', 'tags', 'children', 'historyValue', 'matches', 'hasTag', 'can', 'getMeta', 'toJSON'];

/**
 * `JSON.stringify(actor.getPersistedSnapshot())`, without the copy XState makes first when the
 * snapshot has no children and no history. Its `getPersistedSnapshot` takes the snapshot apart
 * with an object rest (`const { _nodes, tags, machine, …, ...jsonValues } = snapshot`), which V8
 * runs as a generic copy; an actor that holds neither persists as the same fields in the same
 * order, written out here. Actor refs in the context need no replacing either: an actor's
 * `toJSON` gives what XState's `persistContext` puts in their place.
 */
export function persistedJson(actor: AnyActor): string {
  const s = actor.getSnapshot() as AnyMachineSnapshot;
  if (hasKeys(s.children) || hasKeys(s.historyValue)) return JSON.stringify(actor.getPersistedSnapshot());
  return JSON.stringify({ status: s.status, output: s.output, error: s.error, value: s.value, historyValue: {}, context: s.context, children: {} });
}

/** Whether `o` has an enumerable key (without listing them). */
export function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}
