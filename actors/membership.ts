import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Db, Session } from '../storage/db.ts';
import { errInfo } from './errors.ts';
import { registerNode } from './store.ts';
import type { RuntimeLogger } from './types.ts';

/** Advisory-lock namespace of node liveness locks (matches `actor_live_nodes()`). */
const LIVENESS_NAMESPACE = 379423;
const RECONNECT_MS = 1000;

export const defaultNode = () => `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;

export interface MembershipOptions {
  db: Db;
  node: string;
  log: RuntimeLogger;
  /** Another node appended to an actor this node owns. */
  onEvents(type: string, key: string): void;
}

/**
 * This process as a node of the cluster: alive exactly while its session holds the liveness
 * lock (a killed process loses it with its connection, so its actors can be claimed at once),
 * and listening for appends by other nodes to the actors it owns.
 */
export class Membership {
  private session: Session | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(private readonly o: MembershipOptions) {}

  async start(): Promise<void> {
    await registerNode(this.o.db, this.o.node);
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.session?.close();
    this.session = undefined;
  }

  private async connect(): Promise<void> {
    const session = await this.o.db.session();
    try {
      await session.query('SELECT pg_advisory_lock($1, hashtext($2))', [LIVENESS_NAMESPACE, this.o.node]);
      session.onNotification((_channel, payload) => {
        const slash = payload.indexOf('/');
        if (slash > 0) this.o.onEvents(payload.slice(0, slash), payload.slice(slash + 1));
      });
      await session.query(`LISTEN ${channel(this.o.db.schema)}`);
    } catch (err) {
      await session.close();
      throw err;
    }
    session.onLost((err) => {
      // Other nodes may take this node's actors over now; writes under the old epochs fail.
      this.o.log.warn({ node: this.o.node, err: errInfo(err) }, 'liveness connection lost; reconnecting');
      this.session = undefined;
      this.reconnect();
    });
    this.session = session;
    if (this.stopped) await this.stop();
  }

  private reconnect(): void {
    if (this.stopped) return;
    this.retry = setTimeout(() => {
      this.connect().catch(() => this.reconnect());
    }, RECONNECT_MS);
  }
}

/** The NOTIFY channel of a schema's actors (the group commit sends on `'actors_' || current_schema()`). */
const channel = (schema: string) => `"actors_${schema}"`;
