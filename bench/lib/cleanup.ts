const pending = new Set<() => Promise<unknown>>();
let installed = false;

/**
 * Registers a cleanup (drop the database, stop a server) to run if the bench is interrupted
 * with SIGINT or SIGTERM; call the returned function once it has run normally.
 */
export function onInterrupt(cleanup: () => Promise<unknown>): () => void {
  if (!installed) {
    installed = true;
    const handler = (signal: NodeJS.Signals) => {
      process.stderr.write(`${signal}: cleaning up\n`);
      void Promise.allSettled([...pending].reverse().map((f) => f())).then(() => process.exit(130));
    };
    process.once('SIGINT', handler);
    process.once('SIGTERM', handler);
  }
  pending.add(cleanup);
  return () => pending.delete(cleanup);
}
