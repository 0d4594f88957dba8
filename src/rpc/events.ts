// Publishes events to the fanout exchange (SPEC §7.1). Never throws or blocks the caller: during an outage events
// wait in a bounded FIFO (oldest dropped and counted when full) and are flushed in order once the broker is back.

import { messageOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { goEncodeValue } from '../model/go-json.js';
import type { Broker } from './broker.js';
import { EVENT_EXCHANGE } from './topology.js';

interface QueuedEvent {
  type: string;
  body: Buffer;
  /** performance.now() at publish(): notify_process_time includes the time spent waiting in the buffer. */
  at: number;
}

/** A fixed-capacity ring: push drops (and returns) the oldest item when full. */
export class BoundedFifo<T> {
  private readonly items: Array<T | undefined>;
  private head = 0;
  private count = 0;

  constructor(private readonly capacity: number) {
    this.items = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.count;
  }

  push(item: T): T | undefined {
    let dropped: T | undefined;
    if (this.count === this.capacity) dropped = this.shift();
    this.items[(this.head + this.count) % this.capacity] = item;
    this.count++;
    return dropped;
  }

  peek(): T | undefined {
    return this.count === 0 ? undefined : this.items[this.head];
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    return item;
  }

  clear(): void {
    this.items.fill(undefined);
    this.head = 0;
    this.count = 0;
  }
}

/** The event envelope of SPEC §7.1, byte-for-byte as the Go publisher writes it (the webhook sends the same). */
export function encodeEvent(type: string, dataJson: string): Buffer {
  return Buffer.from(
    `{"type":${goEncodeValue(type)},"publisher":"pipecat-manager","data_type":"application/json","data":${dataJson}}`,
    'utf8',
  );
}

export interface EventPublisherOptions {
  broker: Broker;
  metrics: Metrics;
  log: Logger;
  bufferLimit?: number;
}

export class EventPublisher {
  private readonly broker: Broker;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly buffer: BoundedFifo<QueuedEvent>;
  private closed = false;
  private dropping = false;

  constructor(o: EventPublisherOptions) {
    this.broker = o.broker;
    this.metrics = o.metrics;
    this.log = o.log;
    this.buffer = new BoundedFifo(Math.max(1, o.bufferLimit ?? 10_000));
    this.broker.on('connected', this.drain);
  }

  /** Publishes `{"type":…,"publisher":"pipecat-manager","data_type":"application/json","data":<raw>}`. */
  publish(type: string, dataJson: string): void {
    try {
      const body = encodeEvent(type, dataJson);
      this.metrics.notifyTotal.inc({ type });
      const event: QueuedEvent = { type, body, at: performance.now() };
      if (this.closed) {
        this.log.warn({ type }, 'event published after close: dropped');
        return;
      }
      // While older events wait, a new one goes behind them: order is preserved across an outage.
      if (this.buffer.length === 0 && this.send(event)) return;
      this.enqueue(event);
    } catch (err) {
      this.log.error({ type, err: messageOf(err) }, 'could not publish an event');
    }
  }

  /** Waits until the buffer is empty (true) or timeoutMs passed (false). For shutdown. */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    this.drain();
    while (this.buffer.length > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, Math.max(1, deadline - performance.now()))));
      this.drain();
    }
    return this.buffer.length === 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.broker.off('connected', this.drain);
    if (this.buffer.length > 0) this.log.warn({ events: this.buffer.length }, 'events still buffered at close: dropped');
    this.buffer.clear();
    this.metrics.eventsBuffered.set(0);
  }

  private send(event: QueuedEvent): boolean {
    if (!this.broker.isConnected) return false;
    try {
      this.broker.publish(EVENT_EXCHANGE, '', event.body, { contentType: 'text/plain' });
    } catch {
      return false;
    }
    this.metrics.notifyProcessTime.observe({ type: event.type }, performance.now() - event.at);
    return true;
  }

  private enqueue(event: QueuedEvent): void {
    const dropped = this.buffer.push(event);
    if (dropped !== undefined) {
      this.metrics.eventsDroppedTotal.inc();
      if (!this.dropping) {
        this.dropping = true;
        this.log.warn({ limit: this.buffer.length }, 'event buffer full while RabbitMQ is down: dropping the oldest');
      }
    }
    this.metrics.eventsBuffered.set(this.buffer.length);
  }

  private readonly drain = (): void => {
    if (this.closed || this.buffer.length === 0) return;
    let sent = 0;
    for (let e = this.buffer.peek(); e !== undefined && this.send(e); e = this.buffer.peek()) {
      this.buffer.shift();
      sent++;
    }
    this.metrics.eventsBuffered.set(this.buffer.length);
    if (this.buffer.length === 0) this.dropping = false;
    if (sent > 0) this.log.info({ events: sent, left: this.buffer.length }, 'flushed buffered events');
  };
}
