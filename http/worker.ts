import { Worker } from 'node:worker_threads';

/**
 * A worker thread running the TypeScript module at `moduleUrl`. The process runs its sources
 * through tsx (`node --import tsx`), whose loader a worker does not inherit: the thread loads the
 * module through tsx's own API instead.
 */
export function startTsWorker(moduleUrl: string, workerData: unknown): Worker {
  const boot = `import('tsx/esm/api').then(({ tsImport }) => tsImport(${JSON.stringify(moduleUrl)}, ${JSON.stringify(moduleUrl)}))`;
  return new Worker(boot, { eval: true, workerData });
}
