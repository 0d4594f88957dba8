// The composition root: builds every part from the configuration, starts them in the order of SPEC §1 and
// shuts them down in reverse. Nothing imports this module but cmd/ and the tests.

import { AdmissionController, clockTicksFromMetrics, readCpuPressureUs } from './admission.js';
import { OutputClock } from './audio/clock.js';
import { Pacer } from './audio/pacer/pacer.js';
import { AudiosocketServer } from './transports/audiosocket/server.js';
import { attachAudiosocket } from './transports/audiosocket/attach.js';
import { CallManager } from './calls/manager.js';
import { warmUp } from './calls/warm-up.js';
import { ProviderRegistry } from './providers/registry.js';
import { missingOfflinePackages } from './providers/offline-packages.js';
import { SileroVad } from './providers/vad/silero.js';
import { SiblingClient } from './rpc/sibling-client.js';
import type { Config, HostPort } from './config.js';
import { DependencyError, messageOf } from './errors.js';
import { NIL_UUID } from './model/uuid.js';
import { clockLatenessBuckets } from './console/headroom.js';
import { ConsoleRoutes } from './console/routes.js';
import { HttpServer, assertHttpExposure, type ReadinessCheck } from './http/server.js';
import { RequestPolicy } from './http/auth.js';
import { OpenFileWatch, httpConnectionCap, startupCaps } from './http/connection-limits.js';
import { RpcOverHttp } from './http/rpc-over-http.js';
import { WebSocketEndpoint } from './transports/websocket/endpoint.js';
import { MetricsServer } from './http/metrics-server.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics.js';
import { Broker } from './rpc/broker.js';
import { RpcClient } from './rpc/client.js';
import { EventPublisher } from './rpc/events.js';
import { EventsWebhook } from './rpc/events-webhook.js';
import type { EventSink } from './calls/ports.js';
import { RpcRoutes } from './rpc/routes.js';
import { RpcServer } from './rpc/server.js';
import { storeBoundRequest } from './rpc/store-bound.js';
import { SHARED_QUEUE, declareTopology, perHostQueue } from './rpc/topology.js';
import { endRowsLeftLive } from './store/end-left-live.js';
import { openStore } from './store/open-store.js';

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
    private readonly sharedServer: RpcServer | null,
    private readonly audiosocket: AudiosocketServer,
    private readonly clock: OutputClock,
    /** New-call admission (MAX_CALLS, headroom); tests force an overload through it. */
    readonly admission: AdmissionController,
  ) {
    this.calls = calls;
  }

  static async start(config: Config, log: Logger, options: AppOptions = {}): Promise<App> {
    const metrics = options.metrics ?? new Metrics();
    const closers: Closer[] = [];
    assertHttpExposure(config.httpListen, config.httpAuthToken);
    const caps = startupCaps(config, log);
    try {
      const metricsServer = new MetricsServer(metrics, config.prometheusEndpoint);
      const metricsAddress = await metricsServer.listen(config.prometheusListen);
      closers.push(() => metricsServer.close());
      const openFiles = new OpenFileWatch(metrics, log);
      closers.push(() => openFiles.close());

      // Each part is the real service when its address is configured, else the embedded one (SQLite, no cache,
      // no broker): a fresh machine runs with no other service.
      const opened = await openStore(config, log, metrics);
      closers.push(() => opened.close());
      const store = opened.store;
      const checks: Record<string, ReadinessCheck> = { ...opened.checks };
      // One lookup through the store opens its first pooled connections now, not in the first call's setup
      // (measured: 110 ms of the first call's 500 ms greeting).
      await store.get(NIL_UUID);

      let broker: Broker | null = null;
      let rpcClient: RpcClient | null = null;
      const sinks: EventSink[] = [];
      if (config.rabbitmqAddress !== '') {
        const b = await Broker.connect(config.rabbitmqAddress, log);
        broker = b;
        closers.push(() => b.close());
        checks.rabbitmq = () => b.ping();
        await declareTopology(b, config.podIp, log);
        const publisher = new EventPublisher({ broker: b, metrics, log });
        closers.push(() => publisher.close());
        sinks.push(publisher);
        const client = new RpcClient({ broker: b, publisher: 'pipecat-manager', metrics, log });
        rpcClient = client;
        closers.push(() => client.close());
      }
      if (config.eventsWebhookUrl !== '') {
        const webhook = new EventsWebhook({ url: config.eventsWebhookUrl, metrics, log });
        closers.push(() => webhook.close());
        sinks.push(webhook);
      }
      const events: EventSink = {
        publish: (type, dataJson) => {
          for (const sink of sinks) sink.publish(type, dataJson);
        },
      };
      const modes = {
        database: opened.modes.database,
        cache: opened.modes.cache,
        rpc: broker !== null ? 'rabbitmq + http' : 'http',
        events: [broker !== null ? 'rabbitmq' : '', config.eventsWebhookUrl !== '' ? 'webhook' : ''].filter((m) => m !== '').join(' + ') || 'none',
      };
      // Nothing else can use an embedded file: what it still shows live on this host died with the last process.
      // What this host id still shows live died with its last process (host ids are unique per instance): ended
      // before any new call is taken, so a crash never leaves live ghosts, in MySQL as in the embedded file.
      await endRowsLeftLive(store, events, config.podIp, metrics, log);

      // Warm start (issue 9): what every call needs that can be loaded once is loaded before the daemon says it
      // started, so the first call greets as fast as the tenth and no call's setup stalls another's frames.
      // Warm DSP workers (VAD inference off the main thread): started once, before the warm-up uses them, each
      // loading the Silero model at startup rather than on a live call; stopped at shutdown.
      await SileroVad.start({
        workers: config.dspWorkers ?? undefined,
        workerNice: config.dspWorkerNice,
        onWorkerCrash: (detail) => log.error({ detail }, 'a DSP worker thread crashed; it is replaced, and the calls whose VAD windows it was running end'),
      });
      closers.push(() => SileroVad.shutdown());
      const warm = await warmUp(config);
      log.info({ ms: Math.round(warm.totalMs), steps: warm.steps }, 'warm start done');
      if (Object.keys(warm.failed).length > 0) log.warn({ failed: warm.failed }, 'some warm-up steps failed; the first call pays for them');
      const pacer = await startPacer(config, metrics, log);
      if (pacer !== null) closers.push(() => pacer.close());
      // With the pacing thread, the main clock only stages Audiosocket audio: the lateness callers hear is the
      // thread's, and that is what output_frame_lateness_seconds (and admission's late-tick share) measure.
      const clock = new OutputClock(pacer === null ? { metrics, log } : { log });
      closers.push(() => clock.close());

      let audiosocketAddress: HostPort = config.audiosocketListen;
      let manager: CallManager | null = null;
      let sharedQueue: RpcServer | null = null;
      // Leaving and rejoining the shared queue run one at a time, in the order admission decided them.
      let queueMove = Promise.resolve();
      const admission = new AdmissionController({
        maxCalls: config.maxCalls,
        headroom: config.admissionControl,
        sources: {
          activeCalls: () => manager?.size ?? 0,
          clockTicks: () => clockTicksFromMetrics(metrics),
          workers: () => SileroVad.poolStats(),
          cpuPressureUs: readCpuPressureUs,
        },
        metrics,
        log,
        onChange: (admitting) => {
          queueMove = queueMove
            .then(() => (admitting ? sharedQueue?.resume() : sharedQueue?.pause()))
            .catch((err: unknown) => log.warn({ err: messageOf(err) }, 'could not leave or rejoin the shared RPC queue'));
        },
      });
      admission.start();
      closers.push(() => admission.close());
      checks.admission = () => admission.readiness();
      const calls = new CallManager({
        config,
        store,
        events,
        siblings: new SiblingClient(rpcClient ?? NO_BROKER_RPC),
        metrics,
        log,
        providers: options.providers ?? new ProviderRegistry(config, {}, metrics.providers),
        externalHost: () => `${config.podIp}:${audiosocketAddress.port}`,
        admit: () => admission.admit(),
      });
      manager = calls;
      closers.push(() => calls.shutdown(0));

      const routes = new RpcRoutes(calls, config.podIp);
      let sharedServer: RpcServer | null = null;
      if (broker !== null) {
        const serverOptions = {
          broker,
          handler: (req: Parameters<RpcRoutes['handle']>[0]) => routes.handle(req),
          routeLabel: (req: Parameters<RpcRoutes['label']>[0]) => routes.label(req),
          metrics,
          log,
          maxRequestBytes: config.limits.rpcRequestBytes,
          // Pings, messages and live calls are answered from memory: a slow MySQL must not take their slots.
          prefetch: 256,
          storeBound: storeBoundRequest((id) => calls.inMemory(id)),
          maxStoreBound: 32,
          storeSlow: opened.isSlow,
        };
        // Two servers so shutdown can stop taking new calls (shared queue) while live calls still get their
        // stop and message requests (per-host queue).
        const hostServer = new RpcServer({ ...serverOptions, queues: [perHostQueue(config.podIp)] });
        const shared = new RpcServer({ ...serverOptions, queues: [SHARED_QUEUE] });
        sharedServer = shared;
        await hostServer.start();
        closers.push(() => hostServer.stop());
        await shared.start();
        closers.push(() => shared.stop());
        sharedQueue = shared;
        admission.update();
      }

      const audiosocket = new AudiosocketServer({
        host: config.audiosocketListen.host,
        port: config.audiosocketListen.port,
        handshakeTimeoutMs: config.audiosocketHandshakeTimeoutMs,
        maxFrameBytes: config.audiosocketMaxFrameBytes,
        metrics,
        log,
        onCall: (uuid, conn) => attachAudiosocket({ calls, clock, pacer, metrics, log, dtmf: config.audiosocketDtmf }, uuid, conn),
        maxConnections: caps.audiosocket,
      });
      audiosocketAddress = await audiosocket.listen();
      closers.push(() => audiosocket.close());

      const http = new HttpServer(checks, modes, {
        policy: RequestPolicy.fromConfig(config),
        cap: httpConnectionCap(caps.http, metrics, log),
      });
      // SPEC §9: the call's WebSocket media or monitor; its pipeline starts when the media attaches.
      const websocket = new WebSocketEndpoint({ config, calls, clock, metrics, log, maxConnections: caps.websocket });
      http.onUpgrade((req, socket, head) => websocket.handleUpgrade(req, socket, head));
      const consoleRoutes = new ConsoleRoutes({
        config,
        calls,
        log,
        pastCalls: store,
        headroom: { admission: () => admission.totals, clockLateness: () => clockLatenessBuckets(metrics) },
      });
      closers.push(() => consoleRoutes.close());
      // The same routing table as the broker's RPC server, for control without a broker (or a quick curl).
      const rpcOverHttp = new RpcOverHttp({ routes, authToken: config.httpAuthToken, metrics, log, maxBodyBytes: config.limits.rpcRequestBytes });
      http.onRequest(async (req, res) => (await rpcOverHttp.handle(req, res)) || consoleRoutes.handle(req, res));
      const httpAddress = await http.listen(config.httpListen);
      closers.push(() => http.close());
      closers.push(() => websocket.close());

      const addresses = { audiosocket: audiosocketAddress, http: httpAddress, metrics: metricsAddress };
      const missing = missingOfflinePackages({ stt: config.defaults.sttType, tts: config.defaults.ttsType });
      if (missing.length > 0) {
        log.warn(
          { missing },
          `the offline bot (DEFAULT_STT_TYPE=${config.defaults.sttType}, DEFAULT_TTS_TYPE=${config.defaults.ttsType}) needs: apt-get install ${missing.join(' ')}`,
        );
      }
      log.info(
        {
          host_id: config.podIp,
          audiosocket: `${audiosocketAddress.host}:${audiosocketAddress.port}`,
          http: `${httpAddress.host}:${httpAddress.port}`,
          metrics: `${metricsAddress.host}:${metricsAddress.port}${config.prometheusEndpoint}`,
          modes,
        },
        'pipecat-manager started',
      );
      return new App(config, log, metrics, addresses, calls, closers, sharedServer, audiosocket, clock, admission);
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
      await this.sharedServer?.stop();
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

/** Siblings' transport when no broker is configured: call-manager and ai-manager live behind RabbitMQ only. */
const NO_BROKER_RPC: Pick<RpcClient, 'request'> = {
  request: (queue) =>
    Promise.reject(
      new DependencyError('rabbitmq', `${queue} is reached over RabbitMQ and no RABBITMQ_ADDRESS is configured`),
    ),
};

/**
 * The pacing thread that writes Audiosocket frames (AUDIOSOCKET_PACER_LEAD_MS > 0), running before the listener
 * opens. If it cannot start, calls are paced on the main thread.
 */
async function startPacer(config: Config, metrics: Metrics, log: Logger): Promise<Pacer | null> {
  if (config.audiosocketPacerLeadMs === 0) return null;
  const pacer = new Pacer({
    leadMs: config.audiosocketPacerLeadMs,
    nice: config.audiosocketPacerNice,
    log,
    onLateness: (ms) => metrics.outputFrameLateness.observe(Math.max(0, ms) / 1000),
    onExit: (detail) => log.error({ detail }, 'the pacing thread stopped; Audiosocket calls are paced on the main thread from now on'),
  });
  if (await pacer.ready) return pacer;
  log.error('the pacing thread did not start; Audiosocket calls are paced on the main thread');
  await pacer.close();
  return null;
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
