import type { Clock } from './clock.ts';

const FIRST_MS = 1_000;
const MAX_MS = 5 * 60_000;

/**
 * Actors let go because the state they moved to by themselves could not be stored. Their timer
 * is still due in storage, so the timer wheel would wake them at its next pass, and they would
 * fail the same way every pass: each is woken again only after a delay that doubles with every
 * failure in a row (1 s, 2 s, 4 s … 5 min), until a state of theirs is stored. Events sent to
 * them are not held back.
 */
export class HeldOff {
  private readonly actors = new Map<string, { failures: number; until: number }>();

  constructor(private readonly clock: Clock) {}

  /** Records a failure; returns how many in a row and when the actor may be woken next. */
  hold(id: string): { failures: number; until: number } {
    const failures = (this.actors.get(id)?.failures ?? 0) + 1;
    const until = this.clock.now() + Math.min(MAX_MS, FIRST_MS * 2 ** (failures - 1));
    const held = { failures, until };
    this.actors.set(id, held);
    return held;
  }

  /** When the timer wheel may wake the actor next (0: now). */
  until(id: string): number {
    return this.actors.size ? (this.actors.get(id)?.until ?? 0) : 0;
  }

  /** Failures in a row so far (0: none); read when a save starts, for {@link clear}. */
  failures(id: string): number {
    return this.actors.size ? (this.actors.get(id)?.failures ?? 0) : 0;
  }

  /**
   * A state of the actor's was stored: it is well again, unless it failed again while that
   * state was being written (`failures`: as read when the write started).
   */
  clear(id: string, failures: number): void {
    if (failures && this.actors.get(id)?.failures === failures) this.actors.delete(id);
  }

  get size(): number {
    return this.actors.size;
  }
}
