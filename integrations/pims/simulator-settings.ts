/** Settings of the practice-system simulator: defaults, and the checks `configure()` applies. */

export interface PimsSimulatorSettings {
  /**
   * Open visits at start. Read once: later, open and close visits with the control methods
   * (`openVisit`, `closeVisit`, `churn`), so the data never jumps under a running sync.
   */
  visitCount: number;
  /** Line items of each visit created from now on (at start, by `openVisit` and by `churn`). */
  itemsPerVisit: number;
  /** Delay before every answer, failures included. */
  latencyMs: number;
  /** Share of requests answered 503, 0..1. */
  failureRate: number;
  /**
   * Requests per second per client (`X-Client-Id`, or `anonymous`), as a token bucket with a
   * burst of `max(1, rateLimitPerSec)`. Over the limit: 429 with Retry-After. Infinity is off.
   */
  rateLimitPerSec: number;
  /** An outage: every request is answered 503. */
  down: boolean;
}

export type PimsSimulatorOptions = Partial<PimsSimulatorSettings> & {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Stamps `checkedInAt` and `updatedAt` and each call's `at`; default `Date.now`. */
  now?: () => number;
  /** Same seed (and clock): same visits, same items, same failure and churn decisions. */
  seed?: number;
};

export const defaultPimsSimulatorSettings: Readonly<PimsSimulatorSettings> = Object.freeze({
  visitCount: 300,
  itemsPerVisit: 5,
  latencyMs: 0,
  failureRate: 0,
  rateLimitPerSec: Infinity,
  down: false,
});

/** Throws a RangeError naming every invalid field, so a bad demo setting fails loudly, not oddly. */
export function checkSettings(settings: Partial<PimsSimulatorSettings>): void {
  const problems: string[] = [];
  const count = (key: 'visitCount' | 'itemsPerVisit') => {
    const v = settings[key];
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) problems.push(`${key} must be a whole number >= 0`);
  };
  count('visitCount');
  count('itemsPerVisit');
  const { latencyMs, failureRate, rateLimitPerSec, down } = settings;
  if (latencyMs !== undefined && !(latencyMs >= 0 && Number.isFinite(latencyMs))) problems.push('latencyMs must be >= 0');
  if (failureRate !== undefined && !(failureRate >= 0 && failureRate <= 1)) problems.push('failureRate must be within 0..1');
  if (rateLimitPerSec !== undefined && !(rateLimitPerSec > 0)) problems.push('rateLimitPerSec must be > 0 (Infinity for off)');
  if (down !== undefined && typeof down !== 'boolean') problems.push('down must be a boolean');
  if (problems.length > 0) throw new RangeError(`invalid simulator settings: ${problems.join('; ')}`);
}
