import { execFileSync } from 'node:child_process';

export type ClientSched = 'batch' | 'normal';

/**
 * Puts every thread of this process (the load generator) under Linux's SCHED_BATCH policy. Such
 * a thread takes its share of the cores as before, but does not preempt the running thread when
 * it wakes up: an answer from the server no longer interrupts the server itself. Call it after
 * spawning the server and PostgreSQL, which keep the normal policy (a child inherits its
 * parent's). No privileges are needed to lower one's own policy. Returns the policy in effect,
 * 'normal' when it could not be set (no `chrt`, not Linux).
 */
export function yieldOnWakeup(): ClientSched {
  try {
    execFileSync('chrt', ['--all-tasks', '--batch', '--pid', '0', String(process.pid)], { stdio: 'ignore' });
    return 'batch';
  } catch {
    return 'normal';
  }
}
