import { serve } from '@hono/node-server';
import pino from 'pino';
import path from 'node:path';
import type { Server as HttpServer } from 'node:http';
import { ActorSystem } from '../actors/system.ts';
import { createCoordination } from '../storage/coordination/index.ts';
import { createDb } from '../storage/db.ts';
import { startEmbeddedPostgres, type EmbeddedServer } from '../storage/embedded.ts';
import { migrate } from '../storage/migrate.ts';
import { createApp } from './app.ts';
import { demoTokens } from './auth.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { hostname } from 'node:os';
import { systemClock } from '../actors/clock.ts';
import { startInsurerSimulator, type InsurerSimulator } from '../integrations/insurer/simulator.ts';
import { createLine } from '../storage/line/index.ts';
import { loadCipher } from './keys.ts';
import { checkListen, closeHttp, listenProblem } from './listen.ts';
import { demoActorTypes } from './modules/demo.ts';
import { createInsurerModule } from './modules/insurer/module.ts';
import { insurerRoutes } from './modules/insurer/routes.ts';
import { startPimsSimulator, type PimsSimulator } from '../integrations/pims/simulator.ts';
import { createPimsModule } from './modules/pims/module.ts';
import { pimsRoutes } from './modules/pims/routes.ts';
import { randomBytes } from 'node:crypto';
import { startCommsSimulator, type CommsSimulator } from '../integrations/comms/simulator.ts';
import { startReferralSender, type ReferralSender } from '../integrations/pridok/simulator.ts';
import { createConsultationModule } from './modules/consultations/module.ts';
import { consultationReport } from './modules/consultations/report.ts';
import { consultationRoutes } from './modules/consultations/routes.ts';
import { pridokWebhook } from './modules/consultations/webhook.ts';

/** The composition root: reads the environment once, wires storage, runtime and HTTP. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`config error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const cannotListen = await checkListen(config.PORT, config.HOST);
  if (cannotListen) {
    process.stderr.write(`${cannotListen}\n`);
    process.exit(2);
  }
  // A signal before the app is up stops what has been started (the embedded PostgreSQL) and exits.
  process.once('SIGTERM', abortStart);
  process.once('SIGINT', abortStart);
  const logger = pino({
    level: config.LOG_LEVEL,
    base: { pid: process.pid },
    redact: { paths: ['req.headers.authorization', '*.context', '*.event', '*.token'], censor: '[redacted]' },
  });
  const started = performance.now();

  let embedded: EmbeddedServer | undefined;
  let connectionString = config.DATABASE_URL;
  if (!connectionString) {
    embeddedStart = startEmbeddedPostgres({ dataDir: config.DATA_DIR, onLog: (line) => logger.debug({ pg: line.trim() }, 'embedded postgres') });
    embedded = await embeddedStart;
    connectionString = embedded.connectionString;
  }
  const db = createDb({ connectionString, max: config.DB_POOL_SIZE });
  const applied = await migrate(db);
  if (applied.length) logger.info({ applied }, 'migrations applied');
  const coordination = await createCoordination({ redisUrl: config.REDIS_URL, onError: (err) => logger.warn({ err: err.message }, 'redis') });

  // The line gets its own connections: patient writes queueing on the audit lock must never
  // keep the next request to an insurer waiting for a connection.
  const lineDb = createDb({ connectionString, max: 3 });
  const line = await createLine({ db: lineDb, redis: config.REDIS_URL ? { url: config.REDIS_URL } : undefined, onError: (err) => logger.warn({ err: err.message }, 'redis (line)') });
  const { cipher, source: keySource } = loadCipher(config);
  if (!config.DATA_KEYS) logger.warn({ keyFile: keySource }, 'DATA_KEYS is not set: patient data is encrypted with a key generated into DATA_DIR');

  // Without INSURERS, a simulated insurer stands in, so the sync can be watched end to end.
  let simulator: InsurerSimulator | undefined;
  let insurers = config.INSURERS;
  if (!insurers) {
    simulator = await startInsurerSimulator({ patientCount: 300, latencyMs: 5 });
    insurers = [{ id: 'KK01', baseUrl: simulator.url, timeoutMs: 2_000, dailyAt: '02:00', timeZone: 'Europe/Berlin' }];
  }

  // Without PIMS_URL, a simulated practice system with a few hundred open visits that open,
  // close and change over time, so visits can be watched refreshing.
  let pimsSimulator: PimsSimulator | undefined;
  let pimsUrl = config.PIMS_URL;
  let stopChurn: (() => void) | undefined;
  if (!pimsUrl) {
    pimsSimulator = await startPimsSimulator({ visitCount: 300, itemsPerVisit: 5, latencyMs: 10, failureRate: 0.05, rateLimitPerSec: Math.max(1, config.PIMS_RATE_PER_S * 2) });
    stopChurn = pimsSimulator.churn({ intervalMs: 10_000, open: 1, close: 1, change: 5 });
    pimsUrl = pimsSimulator.url;
  }

  const clock = systemClock;
  const system = new ActorSystem({ db, logger, clock, waitTimeoutMs: config.WAIT_TIMEOUT_MS });
  for (const def of demoActorTypes({ idleTimeoutMs: config.ACTOR_IDLE_TIMEOUT_MS, mailboxSize: config.MAILBOX_SIZE })) system.register(def);
  const lineSpec = { db: { connectionString }, redis: config.REDIS_URL ? { url: config.REDIS_URL } : undefined };
  const insurerModule = createInsurerModule({
    db,
    system,
    clock,
    logger,
    cipher,
    lineSpec,
    lineNice: config.INSURER_LINE_NICE,
    node: `${hostname()}:${process.pid}`,
    insurers,
    // Without its line thread the process cannot sync insurers: stop, so a supervisor restarts it.
    onLineThreadFailed: () => shutdown('insurer line thread failed', 1),
  });
  const pimsModule = createPimsModule({
    db,
    system,
    clock,
    logger,
    limiter: coordination.rateLimiter,
      pubsub: coordination.pubsub,
    settings: {
      baseUrl: pimsUrl,
      ratePerSec: config.PIMS_RATE_PER_S,
      timeoutMs: config.PIMS_TIMEOUT_MS,
      censusIntervalMs: config.CENSUS_INTERVAL_MS,
      timing: { maxAgeMs: config.VISIT_MAX_AGE_MS, errorAfter: config.VISIT_ERROR_AFTER, retentionMs: config.VISIT_RETENTION_MS },
    },
  });
  // Without COMMS_URL a simulated chat/video/mail provider; without PRIDOK_WEBHOOK_SECRET a demo
  // secret, and once listening, a simulated record system trickling signed referrals.
  let commsSimulator: CommsSimulator | undefined;
  let commsUrl = config.COMMS_URL;
  if (!commsUrl) {
    commsSimulator = await startCommsSimulator({ failureRate: 0.1, latencyMs: 20 });
    commsUrl = commsSimulator.url;
  }
  const webhookSecret = config.PRIDOK_WEBHOOK_SECRET ?? randomBytes(24).toString('hex');
  const consultationModule = createConsultationModule({
    db,
    system,
    clock,
    logger,
    cipher,
    settings: {
      webhookSecret,
      referringInsurer: config.PRIDOK_INSURER_ID,
      commsUrl,
      booking: { followUpMs: config.BOOKING_FOLLOW_UP_MS, expireMs: config.BOOKING_EXPIRE_MS },
      consultation: { slaMs: config.CONSULTATION_SLA_MS },
    },
  });
  let referralSender: ReferralSender | undefined;
  await system.start();
  await insurerModule.start();
  await pimsModule.start();

  const tokens = config.API_TOKENS ?? demoTokens(config.DATA_DIR);
  const app = createApp({
    system,
    tokens,
    logger,
    maxBodyBytes: config.MAX_BODY_BYTES,
    waitTimeoutMs: config.WAIT_TIMEOUT_MS,
    ready: async () => {
      await db.query('SELECT 1');
      await coordination.ping();
    },
    routes: [
      insurerRoutes({ db, system, clock, line, module: insurerModule }),
      pimsRoutes({ db, system, clock, module: pimsModule }),
      consultationRoutes({ db, system, clock, module: consultationModule }),
      consultationReport({ db }),
    ],
    publicRoutes: [pridokWebhook({ db, system, clock, module: consultationModule })],
    registries: [consultationModule.metrics.registry, pimsModule.metrics],
  });
  const server = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, (info) => {
    const storage = embedded
      ? `embedded PostgreSQL in ${path.resolve(embedded.dataDir)} on 127.0.0.1:${embedded.port}${embedded.socketDir ? ' and a Unix socket there, which the app uses' : ''}${embedded.initialised ? ' (new cluster)' : ''}`
      : `PostgreSQL at ${redactUrl(connectionString)}`;
    const locks = coordination.kind === 'redis' ? `Redis at ${redactUrl(config.REDIS_URL!)}` : 'in-process (single node)';
    const insurerLine = simulator ? `insurer simulator at ${simulator.url} (demo insurer KK01)` : `${insurers.length} insurer(s) from INSURERS`;
    const pimsLine = pimsSimulator ? `practice-system simulator at ${pimsSimulator.url}` : `practice system at ${redactUrl(pimsUrl!)}`;
    logger.info(
      { url: `http://${info.address}:${info.port}`, storage, locks, insurers: insurerLine, pims: pimsLine, startupMs: Math.round(performance.now() - started) },
      `listening on http://${info.address}:${info.port}; storage: ${storage}; locks: ${locks}; ${insurerLine}; ${pimsLine}`,
    );
    if (!config.PRIDOK_WEBHOOK_SECRET) {
      const host = info.address.includes(':') ? `[${info.address}]` : info.address;
      referralSender = startReferralSender({ url: `http://${host}:${info.port}/webhooks/pridok/referrals`, secret: webhookSecret, ratePerMin: 6 });
      referralSender.trickle(10_000);
    }
    if (!config.API_TOKENS) {
      const lines = tokens.map((t) => `  ${t.role.padEnd(12)} ${t.token}`).join('\n');
      process.stdout.write(`\nAPI_TOKENS is not set: demo bearer tokens (kept in ${path.join(config.DATA_DIR, 'demo-tokens.json')}):\n${lines}\n\n`);
    }
  });

  // The port was free when checked at boot; one taken since then stops the process cleanly.
  server.on('error', (err) => {
    if (server.listening) return void logger.error({ err: err.message }, 'http server error');
    logger.error({ err: (err as NodeJS.ErrnoException).code }, listenProblem(err, config.PORT, config.HOST));
    shutdown('listen failed', 2);
  });

  let stopping: Promise<void> | undefined;
  function shutdown(signal: string, exitCode = 0): void {
    stopping ??= (async () => {
      logger.info({ signal }, 'shutting down');
      referralSender?.stop();
      await closeHttp(server as HttpServer);
      await insurerModule.stop();
      await system.stop();
      await pimsModule.stop();
      await line.close();
      await lineDb.close();
      await simulator?.close();
      stopChurn?.();
      await pimsSimulator?.close();
      await commsSimulator?.close();
      await db.close();
      await coordination.close();
      await embedded?.stop();
      logger.info('stopped');
    })()
      .then(() => process.exit(exitCode))
      .catch((err) => {
        logger.error({ err: (err as Error).message }, 'unclean shutdown');
        process.exit(1);
      });
  }
  process.off('SIGTERM', abortStart);
  process.off('SIGINT', abortStart);
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+)(:[^@/]*)?@/, '//$1:***@');
}

/**
 * The embedded PostgreSQL being started, so a start that fails or is stopped by a signal before
 * the app is up does not leave it running: it is a child process of its own and would outlive
 * this one.
 */
let embeddedStart: Promise<EmbeddedServer> | undefined;
let aborting = false;

async function stopStarted(): Promise<void> {
  await embeddedStart?.then((server) => server.stop()).catch(() => {});
}

function abortStart(signal: NodeJS.Signals): void {
  aborting = true;
  process.stderr.write(`${signal} before the app was up: stopping\n`);
  void stopStarted().finally(() => process.exit(0));
}

main().catch(async (err) => {
  if (aborting) return; // a signal is already stopping what was started
  process.stderr.write(`startup failed: ${(err as Error).message}\n`);
  await stopStarted();
  process.exit(1);
});
