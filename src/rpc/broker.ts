// The one AMQP connection of the process: connects with noDelay, reconnects forever with backoff, and reruns the
// registered setup callbacks (topology, consumers) on a fresh channel after every (re)connect (SPEC §4.2 fix).

import { EventEmitter } from 'node:events';
import amqp, { type Channel, type ChannelModel, type Options } from 'amqplib';
import { DependencyError, messageOf } from '../errors.js';
import type { Logger } from '../log.js';

export type BrokerSetup = (ch: Channel) => Promise<void>;

export interface BrokerOptions {
  heartbeatSeconds?: number;
  connectTimeoutMs?: number;
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
}

export interface BrokerEvents {
  /** A fresh main channel is open and every setup callback has run on it. */
  connected: [];
  /** The main channel is gone (connection lost, channel error, or close()). */
  disconnected: [reason: string];
}

const DEFAULTS: Required<BrokerOptions> = {
  heartbeatSeconds: 10,
  connectTimeoutMs: 5_000,
  reconnectInitialMs: 200,
  reconnectMaxMs: 1_000,
};

/** host:port of an AMQP URL, for messages that must never carry the credentials. */
function describe(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port === '' ? (u.protocol === 'amqps:' ? '5671' : '5672') : u.port}`;
  } catch {
    return '(invalid URL)';
  }
}

function withHeartbeat(url: string, seconds: number): string {
  try {
    const u = new URL(url);
    if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(seconds));
    return u.toString();
  } catch {
    return url;
  }
}

export class Broker extends EventEmitter<BrokerEvents> {
  private readonly opts: Required<BrokerOptions>;
  private readonly connectUrl: string;
  private readonly where: string;
  private readonly setups: BrokerSetup[] = [];
  private conn: ChannelModel | undefined;
  /** Set only once the setups ran on it: "connected" means usable. */
  private ch: Channel | undefined;
  private closed = false;
  /** Reconnecting starts only after the first successful connect: connect() reports that failure itself. */
  private started = false;
  private closing: Promise<void> | undefined;
  private reconnecting = false;
  private wake: (() => void) | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;

  private constructor(
    url: string,
    private readonly log: Logger,
    opts: BrokerOptions,
  ) {
    super();
    this.opts = { ...DEFAULTS, ...opts };
    this.connectUrl = withHeartbeat(url, this.opts.heartbeatSeconds);
    this.where = describe(url);
  }

  /** Connects once; failing that, a DependencyError naming host:port (never the credentials). */
  static async connect(url: string, log: Logger, opts: BrokerOptions = {}): Promise<Broker> {
    const broker = new Broker(url, log, opts);
    try {
      await broker.open();
      broker.started = true;
    } catch (err) {
      throw new DependencyError('rabbitmq', `cannot connect to RabbitMQ at ${broker.where}: ${messageOf(err)}`);
    }
    log.info({ rabbitmq: broker.where }, 'connected to RabbitMQ');
    return broker;
  }

  get isConnected(): boolean {
    return this.ch !== undefined;
  }

  /** The main channel (consume + publish); throws at once while disconnected so callers fail fast. */
  get channel(): Channel {
    if (this.ch === undefined) throw this.notConnected();
    return this.ch;
  }

  /**
   * Registers a setup callback, run on every (re)connect in registration order. If connected now it also runs at
   * once; should that first run fail it is unregistered and the error is rethrown to the caller.
   */
  async onConnected(fn: BrokerSetup): Promise<void> {
    this.setups.push(fn);
    const ch = this.ch;
    if (ch === undefined) return;
    try {
      await fn(ch);
    } catch (err) {
      this.offConnected(fn);
      throw err;
    }
  }

  offConnected(fn: BrokerSetup): void {
    const i = this.setups.indexOf(fn);
    if (i >= 0) this.setups.splice(i, 1);
  }

  publish(exchange: string, routingKey: string, content: Buffer, options: Options.Publish = {}): void {
    const ch = this.channel;
    try {
      ch.publish(exchange, routingKey, content, options);
    } catch (err) {
      throw new DependencyError('rabbitmq', `RabbitMQ publish failed: ${messageOf(err)}`);
    }
  }

  /**
   * Runs fn on a channel of a separate, short-lived connection. For declares that may fail with a connection-level
   * error: RabbitMQ answers an unknown exchange type with 503 COMMAND_INVALID, which closes the whole connection,
   * so a throwaway channel on the main connection would not protect it.
   */
  async withThrowawayConnection<T>(fn: (ch: Channel) => Promise<T>): Promise<T> {
    const conn = await amqp.connect(this.connectUrl, { noDelay: true, timeout: this.opts.connectTimeoutMs });
    let connError: Error | undefined;
    conn.on('error', (err: Error) => (connError = err));
    try {
      const ch = await conn.createChannel();
      ch.on('error', () => undefined); // the operation's own rejection reports it
      return await fn(ch);
    } catch (err) {
      // After a connection-level refusal the pending operation only says "Channel ended": report the real reason.
      throw connError === undefined ? err : new Error(connError.message, { cause: err });
    } finally {
      await conn.close().catch(() => undefined);
    }
  }

  /** Readiness: a round trip to the broker (open + close a channel) without touching the main channel. */
  async ping(timeoutMs = 2_000): Promise<void> {
    const conn = this.conn;
    if (conn === undefined || this.ch === undefined) throw this.notConnected();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DependencyError('rabbitmq', 'RabbitMQ ping timed out')), timeoutMs);
    });
    const roundTrip = (async () => {
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      await ch.close();
    })();
    try {
      await Promise.race([roundTrip, timeout]);
    } catch (err) {
      throw err instanceof DependencyError ? err : new DependencyError('rabbitmq', `RabbitMQ ping failed: ${messageOf(err)}`);
    } finally {
      clearTimeout(timer);
      roundTrip.catch(() => undefined);
    }
  }

  /** Drops the connection and reconnects (e.g. when the server cancelled a consumer). */
  reset(reason: string): void {
    const conn = this.conn;
    if (conn === undefined || this.closed) return;
    this.log.warn({ reason }, 'resetting the RabbitMQ connection');
    this.conn = undefined;
    this.lose(reason);
    conn.close().catch(() => undefined);
    this.startReconnect();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.wake?.();
      const conn = this.conn;
      this.conn = undefined;
      this.lose('closed');
      if (conn !== undefined) await conn.close().catch(() => undefined);
    })();
    return this.closing;
  }

  private notConnected(): DependencyError {
    return new DependencyError('rabbitmq', 'RabbitMQ is not connected');
  }

  private lose(reason: string): void {
    if (this.ch === undefined) return;
    this.ch = undefined;
    this.emit('disconnected', reason);
  }

  private async open(): Promise<void> {
    const conn = await amqp.connect(this.connectUrl, { noDelay: true, timeout: this.opts.connectTimeoutMs });
    // amqplib emits 'error' before 'close'; an unhandled 'error' would crash the process.
    conn.on('error', (err: Error) => this.log.warn({ err: messageOf(err) }, 'RabbitMQ connection error'));
    conn.on('close', (err?: Error) => this.onConnectionClosed(conn, err));
    conn.on('blocked', (reason: string) => this.log.warn({ reason }, 'RabbitMQ blocked the connection'));
    conn.on('unblocked', () => this.log.info('RabbitMQ unblocked the connection'));
    if (this.closed) {
      await conn.close().catch(() => undefined);
      throw new Error('broker closed');
    }
    this.conn = conn;
    try {
      const ch = await conn.createChannel();
      let chClosed = false;
      ch.on('error', (err: Error) => this.log.warn({ err: messageOf(err) }, 'RabbitMQ channel error'));
      ch.on('close', () => {
        chClosed = true;
        this.onChannelClosed(conn, ch);
      });
      // Indexed loop: a setup registered while this runs is picked up too.
      for (let i = 0; i < this.setups.length; i++) {
        const setup = this.setups[i];
        if (setup !== undefined) await setup(ch);
      }
      if (this.conn !== conn || chClosed || this.closed) throw new Error('connection lost during setup');
      this.ch = ch;
    } catch (err) {
      if (this.conn === conn) this.conn = undefined;
      await conn.close().catch(() => undefined);
      throw err;
    }
    this.emit('connected');
  }

  private onConnectionClosed(conn: ChannelModel, err: Error | undefined): void {
    if (conn !== this.conn) return;
    this.log.warn({ rabbitmq: this.where, err: err === undefined ? undefined : messageOf(err) }, 'RabbitMQ connection lost');
    this.conn = undefined;
    this.lose('connection closed');
    this.startReconnect();
  }

  private onChannelClosed(conn: ChannelModel, ch: Channel): void {
    if (ch !== this.ch) return;
    this.lose('channel closed');
    // The connection closes its channels before emitting its own 'close'; wait a tick to learn which case this is.
    // A lone channel error (e.g. a publish to a missing exchange) resets the connection, so setups run again.
    setImmediate(() => {
      if (conn === this.conn) this.reset('main channel closed by the server');
    });
  }

  private startReconnect(): void {
    if (this.reconnecting || this.closed || !this.started) return;
    this.reconnecting = true;
    void this.reconnectLoop();
  }

  private async reconnectLoop(): Promise<void> {
    let delay = this.opts.reconnectInitialMs;
    try {
      while (!this.closed) {
        await this.sleep(delay * (0.8 + Math.random() * 0.2));
        if (this.closed) return;
        try {
          await this.open();
          this.log.info({ rabbitmq: this.where }, 'reconnected to RabbitMQ');
          return;
        } catch (err) {
          this.log.warn({ rabbitmq: this.where, err: messageOf(err), retryInMs: delay }, 'RabbitMQ reconnect failed');
          delay = Math.min(delay * 2, this.opts.reconnectMaxMs);
        }
      }
    } finally {
      this.reconnecting = false;
    }
  }

  /** A delay that close() cuts short. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(this.wakeTimer);
        this.wake = undefined;
        resolve();
      };
      this.wake = wake;
      this.wakeTimer = setTimeout(wake, ms);
    });
  }
}
