import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';

/**
 * Why the API cannot listen on `port` at `host`, in one line naming the variable to change, or
 * undefined when it can. Checked before storage starts, so a port that is taken stops the
 * process before it has started an embedded PostgreSQL or anything else it would have to stop.
 * The real bind can still fail (another process may take the port in between): the caller
 * handles the server's `error` event too, with `listenProblem`.
 */
export function checkListen(port: number, host: string): Promise<string | undefined> {
  if (port === 0) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (err) => resolve(listenProblem(err, port, host)));
    probe.listen(port, host, () => probe.close(() => resolve(undefined)));
  });
}

export function listenProblem(err: Error, port: number, host: string): string {
  const code = (err as NodeJS.ErrnoException).code;
  const where = `${host}:${port}`;
  if (code === 'EADDRINUSE') return `cannot listen on ${where}: the port is in use by another process (set PORT to a free port)`;
  if (code === 'EACCES') return `cannot listen on ${where}: permission denied (ports below 1024 need privileges; set PORT)`;
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot listen on ${where}: no such local address (set HOST)`;
  return `cannot listen on ${where}: ${code ?? err.message}`;
}

/**
 * Stops taking requests and waits for those in flight. Clients that keep sending on kept-alive
 * connections would hold the server open for ever: from now on every answer closes its
 * connection, idle ones are closed at once, and after 10 s whatever is left.
 */
export async function closeHttp(server: HttpServer): Promise<void> {
  if (!server.listening) return;
  server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => void (res.shouldKeepAlive = false));
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const hard = setTimeout(() => server.closeAllConnections(), 10_000);
  await closed;
  clearTimeout(hard);
}
