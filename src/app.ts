// The composition root: builds every part from the configuration, starts them in the order of SPEC §1 and
// shuts them down in reverse. Nothing imports this module but cmd/ and the tests.

import { OutputClock } from './audio/clock.js';
import { AudiosocketServer } from './transports/audiosocket/server.js';
import type { AudiosocketConnection } from './transports/audiosocket/connection.js';
import { AudiosocketMedia } from './transports/audiosocket/media.js';
import { CallManager } from './calls/manager.js';
import { PipelineStarter } from './calls/pipeline-starter.js';
import { ProviderRegistry } from './providers/provider-registry.js';
import { rateOfKind } from './transports/audiosocket/protocol.js';
import { SileroVad } from './providers/vad/silero.js';
import { Siblings } from './calls/siblings.js';
import type { Config, HostPort } from './config.js';
import { messageOf } from './errors.js';
import { ConsoleRoutes } from './console/routes.js';
import { HttpServer } from './http/server.js';
import { WebSocketEndpoint } from './transports/websocket/endpoint.js';
import { MetricsServer } from './http/metrics-server.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics.js';
import { Broker } from './rpc/broker.js';
import { RpcClient } from './rpc/client.js';
import { EventPublisher } from './rpc/events.js';
import { RpcRoutes } from './rpc/routes.js';
import { RpcServer } from './rpc/server.js';
import { SHARED_QUEUE, declareTopology, perHostQueue } from './rpc/topology.js';
import { PipecatcallCache } from './store/cache.js';
import { Database } from './store/mysql.js';
import { PipecatcallStore } from './store/pipecatcall-store.js';
import { PipecatcallRepository } from './store/pipecatcalls.js';

export interface AppAddresses {
  audiosocket: HostPort;
  http: HostPort;
  metrics: HostPort;
}

export interface AppOptions {
  /** Each App has its own registry by default, so several can run in one process (tests). */
  metrics?: Metrics;
  /** Provider implementations (tests point them at local fakes); by default built from the configuration. */
  providers?: ProviderRegistry;
}

/** Resources opened so far, closed in reverse order: also what a failed start releases. */
type Closer = () => Promise<void> | void;

export class App {
  readonly calls: CallManager;
  private closing: Promise<void> | null = null;

  private constructor(
    readonly config: Config,
    readonly log: Logger,
    readonly metrics: Metrics,
    readonly addresses: AppAddresses,
    calls: CallManager,
    private readonly closers: Closer[],
    private readonly sharedServer: RpcServer,
    private readonly audiosocket: AudiosocketServer,
    private readonly clock: OutputClock,
  ) {
    this.calls = calls;
  }

  static async start(config: Config, log: Logger, options: AppOptions = {}): Promise<App> {
    const metrics = options.metrics ?? new Metrics();
    const closers: Closer[] = [];
    try {
      const metricsServer = new MetricsServer(metrics, config.prometheusEndpoint);
      const metricsAddress = await metricsServer.listen(config.prometheusListen);
      closers.push(() => metricsServer.close());

      const db = await Database.open(config.database, log);
      closers.push(() => db.close());
      const cache = await PipecatcallCache.open(config.redis, log, metrics);
      closers.push(() => cache.close());
      const store = new PipecatcallStore(new PipecatcallRepository(db), cache);

      const broker = await Broker.connect(config.rabbitmqAddress, log);
      closers.push(() => broker.close());
      await declareTopology(broker, config.podIp, log);
      const events = new EventPublisher({ broker, metrics, log });
      closers.push(() => events.close());
      const rpcClient = new RpcClient({ broker, publisher: 'pipecat-manager', metrics, log });
      closers.push(() => rpcClient.close());

      // The Silero model is loaded once per process; loading it blocks the loop (~40 ms), so not on a live call.
      await SileroVad.preload();
      const clock = new OutputClock({ metrics, log });
      closers.push(() => clock.close());

      let audiosocketAddress: HostPort = config.audiosocketListen;
      const siblings = new Siblings(rpcClient);
      // The starter and the manager need each other: the starter ends calls, the manager starts pipelines.
      let manager: CallManager | null = null;
      const providers = options.providers ?? new ProviderRegistry(config);
      const starter = new PipelineStarter({
        config,
        providers,
        siblings,
        metrics,
        publishMessage: (type, call, text) => manager?.publishMessage(type, call, text),
        terminate: (id, reason) => void manager?.terminate(id, reason),
      });
      const calls = new CallManager({
        config,
        store,
        events,
        siblings,
        metrics,
        log,
        checkProviders: (types) => providers.checkAvailable(types),
        externalHost: () => `${config.podIp}:${audiosocketAddress.port}`,
        hooks: {
          onSessionStart: (call) => {
            if (call.media === null) starter.start(call, null, null);
          },
          onSessionEnd: (call) => starter.stop(call),
        },
      });
      manager = calls;
      closers.push(() => calls.shutdown(0));

      const routes = new RpcRoutes(calls, config.podIp);
      const serverOptions = {
        broker,
        handler: (req: Parameters<RpcRoutes['handle']>[0]) => routes.handle(req),
        routeLabel: (req: Parameters<RpcRoutes['label']>[0]) => routes.label(req),
        metrics,
        log,
      };
      // Two servers so shutdown can stop taking new calls (shared queue) while live calls still get their
      // stop and message requests (per-host queue).
      const hostServer = new RpcServer({ ...serverOptions, queues: [perHostQueue(config.podIp)] });
      const sharedServer = new RpcServer({ ...serverOptions, queues: [SHARED_QUEUE] });
      await hostServer.start();
      closers.push(() => hostServer.stop());
      await sharedServer.start();
      closers.push(() => sharedServer.stop());

      const audiosocket = new AudiosocketServer({
        host: config.audiosocketListen.host,
        port: config.audiosocketListen.port,
        handshakeTimeoutMs: config.audiosocketHandshakeTimeoutMs,
        maxFrameBytes: config.audiosocketMaxFrameBytes,
        metrics,
        log,
        onCall: (uuid: string, conn: AudiosocketConnection) => attachAudiosocket(calls, starter, clock, metrics, uuid, conn),
      });
      audiosocketAddress = await audiosocket.listen();
      closers.push(() => audiosocket.close());

      const http = new HttpServer({
        mysql: () => db.ping(),
        redis: () => cache.ping(),
        rabbitmq: () => broker.ping(),
      });
      // SPEC §9: the call's WebSocket media or monitor; its pipeline starts at the first client audio frame.
      const websocket = new WebSocketEndpoint({
        config,
        calls,
        clock,
        metrics,
        log,
        startPipeline: (call, sink, wireRate) => starter.start(call, sink, wireRate),
      });
      http.onUpgrade((req, socket, head) => websocket.handleUpgrade(req, socket, head));
      const consoleRoutes = new ConsoleRoutes({ config, calls, log });
      http.onRequest((req, res) => consoleRoutes.handle(req, res));
      const httpAddress = await http.listen(config.httpListen);
      closers.push(() => http.close());
      closers.push(() => websocket.close());

      const addresses = { audiosocket: audiosocketAddress, http: httpAddress, metrics: metricsAddress };
      log.info(
        {
          host_id: config.podIp,
          audiosocket: `${audiosocketAddress.host}:${audiosocketAddress.port}`,
          http: `${httpAddress.host}:${httpAddress.port}`,
          metrics: `${metricsAddress.host}:${metricsAddress.port}${config.prometheusEndpoint}`,
        },
        'pipecat-manager started',
      );
      return new App(config, log, metrics, addresses, calls, closers, sharedServer, audiosocket, clock);
    } catch (err) {
      await closeAll(closers, log);
      throw err;
    }
  }

  /** What the instance holds right now: for leak checks and the operator console. */
  inspect(): { calls: number; audiosocketConnections: number; clockSinks: number } {
    return { calls: this.calls.size, audiosocketConnections: this.audiosocket.connections, clockSinks: this.clock.size };
  }

  /**
   * Graceful stop (SPEC §1): no new calls, live calls get up to `graceMs` to finish, the rest are ended
   * (each with pipecatcall_terminated), then every connection is closed. Idempotent.
   */
  shutdown(graceMs = this.config.shutdownGraceSeconds * 1000): Promise<void> {
    this.closing ??= (async () => {
      this.log.info({ grace_ms: graceMs, calls: this.calls.size }, 'shutting down');
      await this.sharedServer.stop();
      await this.calls.shutdown(graceMs);
      await closeAll(this.closers, this.log);
      this.log.info('pipecat-manager stopped');
    })();
    return this.closing;
  }

  /** Immediate stop: live calls end now (reason shutdown). */
  close(): Promise<void> {
    return this.shutdown(0);
  }
}

async function closeAll(closers: Closer[], log: Logger): Promise<void> {
  for (const close of closers.splice(0).reverse()) {
    try {
      await close();
    } catch (err) {
      log.warn({ err: messageOf(err) }, 'error while closing');
    }
  }
}

/** Wires an Audiosocket connection to its call (SPEC §2.2 steps 2–6). Throwing makes the server close it. */
async function attachAudiosocket(
  calls: CallManager,
  starter: PipelineStarter,
  clock: OutputClock,
  metrics: Metrics,
  uuid: string,
  conn: AudiosocketConnection,
): Promise<void> {
  let media: AudiosocketMedia | null = null;
  const call = await calls.attachMedia(uuid, () => {
    media = new AudiosocketMedia(conn, clock, metrics);
    return media;
  });
  const m = media as AudiosocketMedia | null;
  if (m === null) return;
  conn.onAudio((pcm, kind) => {
    if (!m.started) {
      m.start(kind);
      starter.start(call, m, rateOfKind(kind));
    }
    call.pipeline?.pushAudio(pcm);
  });
  conn.onDtmf((digit) => {
    call.touch();
    call.pipeline?.pushDtmf(digit);
  });
  // Asterisk hung up (EOF or 0x00), or the connection broke: the call ends. A close of our own making during
  // termination finds the call already terminating; terminate() is idempotent.
  conn.onClose((reason) => {
    void calls.terminate(call.id, reason === 'local' || reason === 'protocol' ? 'error' : 'hangup');
  });
}
