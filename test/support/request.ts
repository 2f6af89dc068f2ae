/** What a harness's `req` takes: GET without a body, POST with one (JSON unless already a string). */
export interface AppRequest {
  method?: string;
  body?: unknown;
  /** A bearer token; null sends none. */
  token?: string | null;
  headers?: Record<string, string>;
}

/** A request to a Hono app in this process, as a client would send it. */
export async function appRequest(app: { request(path: string, init: RequestInit): Response | Promise<Response> }, path: string, init: AppRequest): Promise<Response> {
  return app.request(path, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(init.token == null ? {} : { authorization: `Bearer ${init.token}` }),
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...init.headers,
    },
    ...(init.body === undefined ? {} : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
  });
}
