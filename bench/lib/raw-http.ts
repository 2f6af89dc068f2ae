import net from 'node:net';

/**
 * A lean HTTP/1.1 keep-alive client for load generation: one socket per connection, one request
 * at a time on it (no pipelining), the request written as one prebuilt buffer and the answer
 * read only as far as its status and length. It costs the load generator a fraction of what
 * `node:http` does per request, which matters when the generator shares a 2-core machine with
 * the server and PostgreSQL: whatever it burns, the server does not get.
 */
export class RawConnection {
  private socket: net.Socket | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private waiting: { resolve(status: number): void; reject(err: Error): void } | undefined;

  constructor(
    private readonly port: number,
    /** Header lines sent with every request (`name: value`, no CRLF). */
    private readonly headers: string[],
  ) {}

  /** Sends one request and resolves with the status once the whole answer is read. */
  request(method: string, path: string, body: string): Promise<number> {
    if (this.waiting) return Promise.reject(new Error('one request at a time per connection'));
    const payload = Buffer.from(body);
    const head = `${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1:${this.port}\r\n${this.headers.map((h) => `${h}\r\n`).join('')}content-type: application/json\r\ncontent-length: ${payload.length}\r\n\r\n`;
    const socket = this.connect();
    return new Promise<number>((resolve, reject) => {
      this.waiting = { resolve, reject };
      socket.write(Buffer.concat([Buffer.from(head), payload]));
    });
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  private connect(): net.Socket {
    if (this.socket && !this.socket.destroyed) return this.socket;
    const socket = net.connect({ port: this.port, host: '127.0.0.1', noDelay: true });
    this.buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      this.parse();
    });
    const fail = (err: Error) => {
      this.socket = undefined;
      const w = this.waiting;
      this.waiting = undefined;
      w?.reject(err);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
    this.socket = socket;
    return socket;
  }

  /** Resolves the waiting request once its answer (head and body) is in the buffer. */
  private parse(): void {
    if (!this.waiting) return;
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buf.toString('latin1', 0, end);
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let total: number;
    if (length) total = end + 4 + Number(length[1]);
    else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const last = this.buf.indexOf('\r\n0\r\n\r\n', end);
      if (last < 0 && !this.buf.subarray(end + 4, end + 9).equals(Buffer.from('0\r\n\r\n'))) return;
      total = last < 0 ? end + 9 : last + 7;
    } else total = end + 4; // no body (204, 304)
    if (this.buf.length < total) return;
    this.buf = this.buf.subarray(total);
    const w = this.waiting;
    this.waiting = undefined;
    w.resolve(status);
  }
}
