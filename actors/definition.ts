import type { ResolvedActorType } from './types.ts';

/** The machine's definition as plain JSON, for drawing: functions become their names. */
export function machineDefinition(def: ResolvedActorType): unknown {
  const json = JSON.stringify(def.machine.root.definition, (_key, value) => {
    if (typeof value === 'function') return value.name ? `fn:${value.name}` : 'fn';
    return value;
  });
  return {
    type: def.name,
    events: Object.keys(def.events),
    sensitive: [...def.sensitive],
    idleTimeoutMs: def.idleTimeoutMs,
    mailboxSize: def.mailboxSize,
    machine: JSON.parse(json),
  };
}
