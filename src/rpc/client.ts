// Outbound RPC to sibling services (SPEC §4.3) over RabbitMQ direct reply-to: one reply consumer on the main
// channel, pending requests keyed by correlation_id with a timer each, all rejected when the connection drops.

import { randomUUID } from 'node:crypto';
import type { Channel, ConsumeMessage, Message } from 'amqplib';
import { DependencyError, messageOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Broker } from './broker.js';
import { encodeRequest, parseResponse, type RpcMethod } from './envelope.js';

const REPLY_TO = 'amq.rabbitmq.reply-to';

/** A sibling answered with a status ≥ 300. */
export class RpcStatusError extends DependencyError {
  readonly statusCode: number;
  constructor(dependency: string, statusCode: number, message: string) {
    super(dependency, message);
    this.statusCode = statusCode;
  }
}

export interface RpcClientOptions {
  broker: Broker;
  publisher?: string;
  metrics: Metrics;
  log: Logger;
  timeoutMs?: number;
}

export interface OutboundCall {
  uri: string;
  method: RpcMethod;
  /** Encoded with JSON.stringify; undefined → no body. */
  data?: unknown;
}

export interface RpcResult {
  statusCode: number;
  data: unknown;
}

interface Pending {
  resolve(r: RpcResult): void;
  reject(err: Error): void;
}

/** 'bin-manager.call-manager.request' → 'call-manager' (the metric's target label). */
export function targetOf(queue: string): string {
  return /^bin-manager\.([^.]+)\.request/.exec(queue)?.[1] ?? queue;
}

/** '/v1/external-medias/<id>?x' → 'external-medias' (the metric's resource label). */
export function resourceOf(uri: string): string {
  const path = uri.split('?', 1)[0] ?? '';
  return /^\/v1\/([^/]+)/.exec(path)?.[1] ?? 'unknown';
}

export class RpcClient {
  private readonly broker: Broker;
  private readonly publisher: string;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly pending = new Map<string, Pending>();
  /** The channel whose reply consumer is registered: requests are published only there (direct reply-to rule). */
  private replyChannel: Channel | undefined;
  private replyTag: string | undefined;
  private started: Promise<void> | undefined;
  private closed = false;

  constructor(o: RpcClientOptions) {
    this.broker = o.broker;
    this.publisher = o.publisher ?? 'pipecat-manager';
    this.metrics = o.metrics;
    this.log = o.log;
    this.timeoutMs = o.timeoutMs ?? 3_000;
    this.broker.on('disconnected', this.onDisconnected);
  }

  /** Alias of start(), for callers that want the reply consumer in place before the first request. */
  ready(): Promise<void> {
    return this.start();
  }

  /** Registers the reply consumer (now and after every reconnect). Called by the first request if not before. */
  start(): Promise<void> {
    this.started ??= this.broker.onConnected(this.setup).catch((err: unknown) => {
      this.started = undefined; // let the next request try again
      throw err;
    });
    return this.started;
  }

  async request(
    queue: string,
    call: OutboundCall,
    opts: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<RpcResult> {
    const target = targetOf(queue);
    const labels = { target, resource: resourceOf(call.uri), method: call.method };
    const started = performance.now();
    try {
      return await this.roundTrip(queue, target, call, opts.timeoutMs ?? this.timeoutMs, opts.signal);
    } finally {
      this.metrics.requestProcessTime.observe(labels, performance.now() - started);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.broker.off('disconnected', this.onDisconnected);
    this.broker.offConnected(this.setup);
    const ch = this.replyChannel;
    const tag = this.replyTag;
    this.replyChannel = undefined;
    if (ch !== undefined && tag !== undefined && this.broker.isConnected && this.broker.channel === ch) {
      ch.cancel(tag).catch(() => undefined);
    }
    this.rejectAll(() => new DependencyError('rabbitmq', 'RPC client closed'));
  }

  private async roundTrip(
    queue: string,
    target: string,
    call: OutboundCall,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<RpcResult> {
    if (this.closed) throw new DependencyError('rabbitmq', 'RPC client closed');
    signal?.throwIfAborted();
    await this.start();
    const ch = this.replyChannel;
    if (ch === undefined || !this.broker.isConnected || this.broker.channel !== ch) {
      throw new DependencyError('rabbitmq', 'RabbitMQ is not connected');
    }
    const what = `${call.method} ${call.uri} to ${queue}`;
    const body = encodeRequest({
      uri: call.uri,
      method: call.method,
      publisher: this.publisher,
      ...(call.data === undefined ? {} : { data: JSON.stringify(call.data) }),
    });
    const correlationId = randomUUID();

    return new Promise<RpcResult>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.pending.delete(correlationId);
      };
      const onAbort = (): void => {
        cleanup();
        const reason: unknown = signal?.reason;
        reject(reason instanceof Error ? reason : new Error('request aborted'));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new DependencyError(target, `${what} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(correlationId, {
        resolve: (r) => {
          cleanup();
          if (r.statusCode >= 300) reject(new RpcStatusError(target, r.statusCode, statusMessage(what, r)));
          else resolve(r);
        },
        reject: (err) => {
          cleanup();
          reject(err);
        },
      });
      try {
        // mandatory: a queue that does not exist comes back as a 'return' at once instead of a 3 s timeout.
        ch.publish('', queue, body, { replyTo: REPLY_TO, correlationId, contentType: 'text/plain', mandatory: true });
      } catch (err) {
        this.pending.get(correlationId)?.reject(new DependencyError('rabbitmq', `RabbitMQ publish failed: ${messageOf(err)}`));
      }
    });
  }

  private readonly setup = async (ch: Channel): Promise<void> => {
    ch.on('return', (msg: Message) => this.onReturned(msg));
    const { consumerTag } = await ch.consume(REPLY_TO, (msg) => this.onReply(msg), { noAck: true });
    this.replyChannel = ch;
    this.replyTag = consumerTag;
  };

  private onReply(msg: ConsumeMessage | null): void {
    if (msg === null) return; // consumer cancelled: the broker reconnects and the setup registers a new one
    const id: unknown = msg.properties.correlationId;
    const p = typeof id === 'string' ? this.pending.get(id) : undefined;
    if (p === undefined) {
      this.log.debug({ correlationId: id }, 'RPC reply for no pending request (late or unknown)');
      return;
    }
    try {
      const r = parseResponse(msg.content);
      p.resolve({ statusCode: r.statusCode, data: r.data });
    } catch (err) {
      p.reject(new DependencyError('rabbitmq', `malformed RPC reply: ${messageOf(err)}`));
    }
  }

  private onReturned(msg: Message): void {
    const id: unknown = msg.properties.correlationId;
    const p = typeof id === 'string' ? this.pending.get(id) : undefined;
    p?.reject(new DependencyError(targetOf(msg.fields.routingKey), `no queue ${msg.fields.routingKey} (is the service running?)`));
  }

  private readonly onDisconnected = (): void => {
    this.replyChannel = undefined;
    this.rejectAll(() => new DependencyError('rabbitmq', 'RabbitMQ connection lost before the reply arrived'));
  };

  private rejectAll(error: () => Error): void {
    for (const p of [...this.pending.values()]) p.reject(error());
  }
}

function statusMessage(what: string, r: RpcResult): string {
  const data = r.data;
  const reason =
    typeof data === 'object' && data !== null && typeof (data as { message?: unknown }).message === 'string'
      ? `: ${(data as { message: string }).message}`
      : '';
  return `${what} failed with status ${r.statusCode}${reason}`;
}
