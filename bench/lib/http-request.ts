import http from 'node:http';

/**
 * Requests to the server under test over a keep-alive agent (node:http, not fetch: the client's
 * own cost stays small). A string body is sent as JSON.
 */
export function httpRequester(port: number, agent: http.Agent, defaults: http.OutgoingHttpHeaders = {}) {
  return (method: string, path: string, body?: string, extra: http.OutgoingHttpHeaders = {}) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { ...defaults, ...extra };
      if (body !== undefined) {
        if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(body);
      }
      const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
}
