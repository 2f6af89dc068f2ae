import { afterEach, describe, expect, it, vi } from 'vitest';
import { createCommsClient, type CommsClient } from '../../integrations/comms/client.ts';
import {
  CommsError,
  CommsProtocolError,
  CommsRateLimitedError,
  CommsRejectedError,
  CommsUnavailableError,
} from '../../integrations/comms/errors.ts';
import { startCommsSimulator, type CommsSimulator, type CommsSimulatorOptions } from '../../integrations/comms/simulator.ts';

const EMAIL = 'kari.nordmann@example.com';

const sims: CommsSimulator[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

async function simulator(options: CommsSimulatorOptions = {}, fetch?: typeof globalThis.fetch): Promise<{ sim: CommsSimulator; client: CommsClient }> {
  const sim = await startCommsSimulator({ seed: 7, ...options });
  sims.push(sim);
  return { sim, client: createCommsClient({ baseUrl: sim.url, timeoutMs: 5_000, ...(fetch ? { fetch } : {}) }) };
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail('expected the request to fail'),
    (err: unknown) => err,
  );
}

const link = (sim: CommsSimulator, id: string) => ({ to: EMAIL, link: `${sim.url}/join/${id}`, consultationId: 'C-1' });

describe('comms client against the simulator', () => {
  it('creates a room and sends the link', async () => {
    const { sim, client } = await simulator();
    const room = await client.createRoom('video', 'C-1', 'C-1:room');
    expect(room).toEqual({ roomId: expect.stringMatching(/^room_[0-9a-f]{16}$/), url: `${sim.url}/join/${room.roomId}` });
    expect(sim.stats.rooms.get('C-1:room')).toEqual({ ...room, kind: 'video', consultationId: 'C-1', key: 'C-1:room' });

    const sent = await client.sendLink({ to: EMAIL, link: room.url, consultationId: 'C-1' }, 'C-1:link-mail');
    expect(sent).toEqual({ messageId: expect.stringMatching(/^msg_[0-9a-f]{16}$/) });
    expect(sim.stats.messages).toEqual([{ messageId: sent.messageId, to: EMAIL, link: room.url, consultationId: 'C-1', key: 'C-1:link-mail' }]);
    expect(sim.stats.calls).toEqual([
      { at: expect.any(Number), path: '/rooms', key: 'C-1:room', status: 201, replayed: false },
      { at: expect.any(Number), path: '/messages', key: 'C-1:link-mail', status: 202, replayed: false },
    ]);
  });

  it('answers a repeated key with the same response and does the work once', async () => {
    const { sim, client } = await simulator();
    const room = await client.createRoom('chat', 'C-1', 'k-room');
    expect(await client.createRoom('chat', 'C-1', 'k-room')).toEqual(room);
    expect(sim.stats.rooms.size).toBe(1);

    const first = await client.sendLink(link(sim, room.roomId), 'k-mail');
    const again = await Promise.all([client.sendLink(link(sim, room.roomId), 'k-mail'), client.sendLink(link(sim, room.roomId), 'k-mail')]);
    expect(again).toEqual([first, first]);
    expect(sim.stats.messages).toHaveLength(1);
    expect(sim.stats.calls.map((c) => [c.status, c.replayed])).toEqual([
      [201, false],
      [201, true],
      [202, false],
      [202, true],
      [202, true],
    ]);
    // Another key is another mail.
    await client.sendLink(link(sim, room.roomId), 'k-mail-2');
    expect(sim.stats.messages.map((m) => m.key)).toEqual(['k-mail', 'k-mail-2']);
  });

  it('refuses a key reused for a different request, without doing it', async () => {
    const { sim, client } = await simulator();
    await client.createRoom('chat', 'C-1', 'k');
    const err = await failure(client.createRoom('video', 'C-1', 'k'));
    expect(err).toBeInstanceOf(CommsRejectedError);
    expect(err).toMatchObject({ status: 422, retryable: false });
    expect(await failure(client.sendLink(link(sim, 'x'), 'k'))).toMatchObject({ name: 'CommsRejectedError', status: 422 });
    expect(sim.stats.rooms.get('k')?.kind).toBe('chat');
    expect(sim.stats.messages).toEqual([]);
  });

  it('turns failureRate 1 into CommsUnavailableError, records nothing, then sends exactly once with the same key', async () => {
    const { sim, client } = await simulator({ failureRate: 1 });
    for (let i = 0; i < 3; i++) {
      const err = await failure(client.sendLink(link(sim, 'r1'), 'k-mail'));
      expect(err).toBeInstanceOf(CommsUnavailableError);
      expect(err).toMatchObject({ status: 503, retryable: true, message: 'POST /messages failed: 503' });
    }
    expect(await failure(client.createRoom('video', 'C-1', 'k-room'))).toBeInstanceOf(CommsUnavailableError);
    expect(sim.stats.messages).toEqual([]);
    expect(sim.stats.rooms.size).toBe(0);

    sim.configure({ failureRate: 0 });
    const sent = await client.sendLink(link(sim, 'r1'), 'k-mail');
    expect(await client.sendLink(link(sim, 'r1'), 'k-mail')).toEqual(sent);
    expect(sim.stats.messages).toEqual([expect.objectContaining({ messageId: sent.messageId, key: 'k-mail' })]);
    expect(sim.stats.calls.map((c) => c.status)).toEqual([503, 503, 503, 503, 202, 202]);
  });

  it('turns an outage into CommsUnavailableError, and recovers when it ends', async () => {
    const { sim, client } = await simulator({ down: true });
    expect(await failure(client.createRoom('chat', 'C-1', 'k'))).toMatchObject({ name: 'CommsUnavailableError', status: 503 });
    sim.configure({ down: false });
    await client.createRoom('chat', 'C-1', 'k');
    expect(sim.stats.rooms.size).toBe(1);
  });

  it('refuses a request without Idempotency-Key with 400, as a CommsRejectedError', async () => {
    // Strips the header on the way out, as a broken proxy or an older client would.
    const withoutKey: typeof fetch = (input, init) => {
      const headers = new Headers(init?.headers);
      headers.delete('idempotency-key');
      return fetch(input, { ...init, headers });
    };
    const { sim, client } = await simulator({}, withoutKey);
    const err = await failure(client.sendLink(link(sim, 'r1'), 'k-mail'));
    expect(err).toBeInstanceOf(CommsRejectedError);
    expect(err).toMatchObject({ status: 400, retryable: false, message: 'POST /messages failed: 400' });
    expect(sim.stats.calls).toEqual([{ at: expect.any(Number), path: '/messages', key: undefined, status: 400, replayed: false }]);
    expect(sim.stats.messages).toEqual([]);
  });

  it('refuses an unusable key before sending anything', async () => {
    const { sim, client } = await simulator();
    await expect(client.createRoom('chat', 'C-1', '')).rejects.toThrow(RangeError);
    await expect(client.createRoom('chat', 'C-1', 'has space')).rejects.toThrow(RangeError);
    await expect(client.createRoom('chat', 'C-1', 'x'.repeat(256))).rejects.toThrow(RangeError);
    expect(sim.stats.calls).toEqual([]);
  });

  it('turns an invalid request into CommsRejectedError that does not quote the address', async () => {
    const { sim, client } = await simulator();
    const err = await failure(client.sendLink({ to: 'kari.nordmann(at)example.com', link: 'not a url', consultationId: 'C-1' }, 'k'));
    expect(err).toBeInstanceOf(CommsRejectedError);
    expect((err as CommsError).message).toBe('POST /messages failed: 400');
    expect(sim.stats.messages).toEqual([]);
    // Nothing was stored for the key: the corrected request goes through.
    await client.sendLink(link(sim, 'r1'), 'k');
    expect(sim.stats.messages).toHaveLength(1);
  });

  it('turns 429 into CommsRateLimitedError with Retry-After, without doing the work', async () => {
    const { sim, client } = await simulator({ throttleRate: 1, retryAfterSec: 2 });
    const err = await failure(client.createRoom('video', 'C-1', 'k'));
    expect(err).toBeInstanceOf(CommsRateLimitedError);
    expect(err).toMatchObject({ status: 429, retryable: true, retryAfterMs: 2_000 });
    expect(sim.stats.rooms.size).toBe(0);
  });

  it('gives up on a slow answer with CommsUnavailableError; the retry with the same key gets the first answer', async () => {
    const { sim } = await simulator({ latencyMs: 3_000 });
    const client = createCommsClient({ baseUrl: sim.url, timeoutMs: 150 });
    const err = await failure(client.sendLink(link(sim, 'r1'), 'k-mail'));
    expect(err).toBeInstanceOf(CommsUnavailableError);
    expect((err as CommsError).message).toBe('POST /messages failed: timed out after 150 ms');
    // The provider did the work before the answer was lost.
    expect(sim.stats.messages).toHaveLength(1);

    sim.configure({ latencyMs: 0 });
    const sent = await client.sendLink(link(sim, 'r1'), 'k-mail');
    expect(sent.messageId).toBe(sim.stats.messages[0]?.messageId);
    expect(sim.stats.messages).toHaveLength(1);
  });

  it("rethrows the caller's own abort reason", async () => {
    const { sim } = await simulator({ latencyMs: 3_000 });
    const client = createCommsClient({ baseUrl: sim.url });
    const lease = new AbortController();
    const reason = new Error('lease lost');
    const pending = failure(client.createRoom('chat', 'C-1', 'k', lease.signal));
    await vi.waitFor(() => expect(sim.stats.calls).toHaveLength(1));
    lease.abort(reason);
    expect(await pending).toBe(reason);
  });

  it('turns a refused connection into CommsUnavailableError', async () => {
    const { sim, client } = await simulator();
    await sim.close();
    const err = await failure(client.createRoom('chat', 'C-1', 'k'));
    expect(err).toBeInstanceOf(CommsUnavailableError);
    expect((err as CommsError).message).toContain('ECONNREFUSED');
  });

  it('turns an answer outside the contract into CommsProtocolError', async () => {
    const answering = (status: number, body: string) =>
      createCommsClient({ baseUrl: 'http://comms.invalid', fetch: async () => new Response(body, { status }) });
    expect(await failure(answering(200, '{"roomId":"r","url":"https://x.example/r"}').createRoom('chat', 'C-1', 'k'))).toMatchObject({
      name: 'CommsProtocolError',
      issues: ['unexpected status 200'],
      retryable: false,
    });
    const err = await failure(answering(201, `{"roomId":"","url":"${EMAIL}"}`).createRoom('chat', 'C-1', 'k'));
    expect(err).toBeInstanceOf(CommsProtocolError);
    expect((err as CommsProtocolError).issues).toEqual(['roomId: too_small', 'url: invalid_format']);
    expect((err as CommsError).message).not.toContain(EMAIL);
    expect(await failure(answering(202, 'queued').sendLink({ to: EMAIL, link: 'https://x.example', consultationId: 'C-1' }, 'k'))).toMatchObject({
      issues: ['body is not JSON'],
    });
  });

  it('closes promptly with an answer held by latency and idle keep-alive connections', async () => {
    const sim = await startCommsSimulator();
    const client = createCommsClient({ baseUrl: sim.url, timeoutMs: 20_000 });
    await client.createRoom('chat', 'C-1', 'k1'); // leaves an idle keep-alive connection
    sim.configure({ latencyMs: 30_000 });
    const held = failure(client.createRoom('chat', 'C-2', 'k2'));
    await vi.waitFor(() => expect(sim.stats.calls).toHaveLength(2));
    const t0 = performance.now();
    await sim.close();
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(await held).toBeInstanceOf(CommsUnavailableError);
  });

  it('rejects invalid settings', async () => {
    const { sim } = await simulator();
    expect(() => sim.configure({ failureRate: 2 })).toThrow(/failureRate/);
    expect(() => sim.configure({ latencyMs: -1 })).toThrow(/latencyMs/);
    expect(sim.settings.failureRate).toBe(0);
    await expect(startCommsSimulator({ throttleRate: -0.1 })).rejects.toThrow(/throttleRate/);
  });
});
