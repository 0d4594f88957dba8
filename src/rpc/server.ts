// Consumes the request queues: parse → handler → reply to reply_to → ack (SPEC §4.2). Consumers are a broker
// setup, so they come back after every reconnect; a reply is always sent when the caller asked for one.

import type { Channel, ConsumeMessage, Options } from 'amqplib';
import { DependencyError, messageOf, statusOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Broker } from './broker.js';
import { encodeResponse, errorResponse, parseRequest, type RpcRequest, type RpcResponse } from './envelope.js';
import { checkRequestLimits } from './request-limits.js';

export interface RpcServerOptions {
  broker: Broker;
  queues: string[];
  handler: (req: RpcRequest) => Promise<RpcResponse>;
  /** Bounded metric label of a request, e.g. '/v1/pipecatcalls/<pipecatcall-id>' or 'notfound'. */
  routeLabel: (req: RpcRequest) => string;
  metrics: Metrics;
  log: Logger;
  /** Unacked deliveries per consumer, i.e. concurrent handlers per queue. */
  prefetch?: number;
  /** Larger request envelopes are answered 400 unparsed (RPC_MAX_REQUEST_BYTES). */
  maxRequestBytes?: number;
  /**
   * Requests that wait on the store. While the store reports itself slow (`storeSlow`) and `maxStoreBound` of
   * them are already waiting, new ones are answered 500 at once instead of holding a delivery slot for the length
   * of their deadline, so the requests answered from memory find a slot. A merely busy store sheds nothing.
   */
  storeBound?: (req: RpcRequest) => boolean;
  maxStoreBound?: number;
  storeSlow?: () => boolean;
}

export class RpcServer {
  private readonly broker: Broker;
  private readonly queues: string[];
  private readonly handler: (req: RpcRequest) => Promise<RpcResponse>;
  private readonly routeLabel: (req: RpcRequest) => string;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly prefetch: number;
  private readonly maxRequestBytes: number;
  private readonly storeBound: ((req: RpcRequest) => boolean) | undefined;
  private readonly maxStoreBound: number;
  private readonly storeSlow: () => boolean;
  private storeBoundInFlight = 0;
  private consumers: Array<{ ch: Channel; tag: string }> = [];
  private readonly inFlight = new Set<Promise<void>>();
  private stopping: Promise<void> | undefined;
  private paused = false;

  constructor(o: RpcServerOptions) {
    this.broker = o.broker;
    this.queues = [...o.queues];
    this.handler = o.handler;
    this.routeLabel = o.routeLabel;
    this.metrics = o.metrics;
    this.log = o.log;
    this.prefetch = o.prefetch ?? 32;
    this.maxRequestBytes = o.maxRequestBytes ?? 1024 * 1024;
    this.storeBound = o.storeBound;
    this.maxStoreBound = o.maxStoreBound ?? Infinity;
    this.storeSlow = o.storeSlow ?? (() => true);
  }

  /** Starts consuming now if connected, and again after every reconnect. */
  start(): Promise<void> {
    return this.broker.onConnected(this.setup);
  }

  /** Stops intake, then waits (bounded) for the handlers in flight to finish. Idempotent. */
  stop(timeoutMs = 5_000): Promise<void> {
    this.stopping ??= (async () => {
      this.broker.offConnected(this.setup);
      const consumers = this.consumers;
      this.consumers = [];
      for (const { ch, tag } of consumers) {
        // A consumer on a dead channel is already gone.
        if (this.broker.isConnected && this.broker.channel === ch) await ch.cancel(tag).catch(() => undefined);
      }
      if (this.inFlight.size === 0) return;
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      });
      await Promise.race([Promise.allSettled([...this.inFlight]), expired]);
      clearTimeout(timer);
      if (this.inFlight.size > 0) this.log.warn({ inFlight: this.inFlight.size }, 'RPC handlers still running at stop');
    })();
    return this.stopping;
  }

  /**
   * Leaves the queues (cancels the consumers, also across reconnects) so that other instances take their
   * requests; `resume()` consumes again. Handlers in flight finish and reply. Used by admission control.
   */
  async pause(): Promise<void> {
    if (this.paused || this.stopping !== undefined) return;
    this.paused = true;
    const consumers = this.consumers;
    this.consumers = [];
    for (const { ch, tag } of consumers) {
      if (this.broker.isConnected && this.broker.channel === ch) await ch.cancel(tag).catch(() => undefined);
    }
  }

  async resume(): Promise<void> {
    if (!this.paused || this.stopping !== undefined) return;
    this.paused = false;
    if (this.broker.isConnected) await this.setup(this.broker.channel);
  }

  get isPaused(): boolean {
    return this.paused;
  }

  private readonly setup = async (ch: Channel): Promise<void> => {
    if (this.paused) return;
    // Per-consumer limit (global=false): applies to the consumers created below on this channel.
    await ch.prefetch(this.prefetch);
    // A fresh channel means the old consumers died with the old one.
    this.consumers = this.consumers.filter((c) => c.ch === ch);
    for (const queue of this.queues) {
      const { consumerTag } = await ch.consume(queue, (msg) => this.onDelivery(ch, queue, msg), { noAck: false });
      this.consumers.push({ ch, tag: consumerTag });
    }
  };

  private onDelivery(ch: Channel, queue: string, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The server cancelled the consumer (queue deleted): reconnecting redeclares the queue and consumes again.
      if (this.stopping === undefined) this.broker.reset(`consumer on ${queue} cancelled by the server`);
      return;
    }
    const task = this.process(ch, msg);
    this.inFlight.add(task);
    void task.finally(() => this.inFlight.delete(task));
  }

  /** Never rejects: every failure becomes a reply and a log line. */
  private async process(ch: Channel, msg: ConsumeMessage): Promise<void> {
    const started = performance.now();
    let label = 'invalid';
    let method = '';
    let res: RpcResponse;
    try {
      checkRequestLimits(msg.content, this.maxRequestBytes);
      const req = parseRequest(msg.content);
      method = req.method;
      label = 'notfound';
      label = this.routeLabel(req);
      res = this.storeBound?.(req) === true ? await this.handleStoreBound(req) : await this.handler(req);
    } catch (err) {
      const status = statusOf(err);
      if (status >= 500) this.log.error({ err: messageOf(err), route: label, method }, 'RPC handler failed');
      else this.log.debug({ err: messageOf(err), route: label, method, status }, 'RPC request refused');
      res = errorResponse(status, messageOf(err));
    }
    this.reply(msg, res, label);
    try {
      ch.ack(msg);
    } catch (err) {
      // The channel died while the handler ran: the server redelivers the message to a live consumer.
      this.log.warn({ err: messageOf(err), route: label }, 'could not ack an RPC request (channel closed)');
    }
    this.metrics.receiveRequestProcessTime.observe({ type: label, method }, performance.now() - started);
  }

  private async handleStoreBound(req: RpcRequest): Promise<RpcResponse> {
    const waiting = this.storeBoundInFlight;
    if (waiting >= this.maxStoreBound && this.storeSlow()) {
      throw new DependencyError('mysql', `MySQL is slow: ${waiting} requests are already waiting for it; try again later`);
    }
    this.storeBoundInFlight++;
    try {
      return await this.handler(req);
    } finally {
      this.storeBoundInFlight--;
    }
  }

  private reply(msg: ConsumeMessage, res: RpcResponse, label: string): void {
    const replyTo: unknown = msg.properties.replyTo;
    if (typeof replyTo !== 'string' || replyTo === '') return; // delayed or fire-and-forget request
    const options: Options.Publish = { contentType: 'text/plain' };
    const correlationId: unknown = msg.properties.correlationId;
    if (typeof correlationId === 'string') options.correlationId = correlationId;
    try {
      this.broker.publish('', replyTo, encodeResponse(res), options);
    } catch (err) {
      this.log.warn({ err: messageOf(err), route: label }, 'could not send an RPC reply');
    }
  }
}
