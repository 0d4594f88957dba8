// Delivers events to EVENTS_WEBHOOK_URL for installations without a broker: the SPEC §7.1 envelope as the POST
// body, in order, one at a time. Failures are retried with backoff; the queue is bounded (oldest dropped, counted).

import { messageOf, redactSecrets } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { BoundedFifo, encodeEvent } from './events.js';

export interface EventsWebhookOptions {
  url: string;
  metrics: Metrics;
  log: Logger;
  /** Events kept while the receiver is down (default 10 000). */
  queueLimit?: number;
  /** Per-attempt deadline (default 5 s). */
  requestTimeoutMs?: number;
  /** First retry delay, doubled per failed attempt up to maxBackoffMs (defaults 500 ms, 30 s). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

interface QueuedEvent {
  type: string;
  body: Buffer;
}

export class EventsWebhook {
  private readonly url: string;
  private readonly where: string;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly queue: BoundedFifo<QueuedEvent>;
  private readonly requestTimeoutMs: number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly stop = new AbortController();
  private worker: Promise<void> | null = null;
  private failing = false;
  private closing: Promise<void> | null = null;

  constructor(o: EventsWebhookOptions) {
    this.url = o.url;
    // Logs name the receiver without a query string or credentials that may carry a secret.
    const u = new URL(o.url);
    this.where = `${u.protocol}//${u.host}${u.pathname}`;
    this.metrics = o.metrics;
    this.log = o.log;
    this.queue = new BoundedFifo(Math.max(1, o.queueLimit ?? 10_000));
    this.requestTimeoutMs = o.requestTimeoutMs ?? 5_000;
    this.initialBackoffMs = o.initialBackoffMs ?? 500;
    this.maxBackoffMs = o.maxBackoffMs ?? 30_000;
  }

  /** Never throws or blocks: the event is queued and the delivery loop started if idle. */
  publish(type: string, dataJson: string): void {
    if (this.closing !== null) {
      this.metrics.webhookEventsTotal.inc({ result: 'dropped' });
      return;
    }
    const dropped = this.queue.push({ type, body: encodeEvent(type, dataJson) });
    if (dropped !== undefined) {
      this.metrics.webhookEventsTotal.inc({ result: 'dropped' });
      this.log.debug({ type: dropped.type }, 'webhook queue full: dropped the oldest event');
    }
    this.metrics.webhookEventsQueued.set(this.queue.length);
    this.kick();
  }

  /** Starts the delivery loop unless it runs; one loop at a time keeps the events in order. */
  private kick(): void {
    if (this.worker !== null || this.stop.signal.aborted) return;
    this.worker = this.deliverAll().finally(() => {
      this.worker = null;
      // An event queued while the loop was finishing its last await needs a new loop.
      if (this.queue.length > 0) this.kick();
    });
  }

  get queued(): number {
    return this.queue.length;
  }

  /**
   * Gives queued events up to `graceMs` to be delivered, then stops (an attempt in flight is aborted) and drops
   * the rest, counted. Idempotent.
   */
  close(graceMs = 2_000): Promise<void> {
    this.closing ??= (async () => {
      const deadline = performance.now() + graceMs;
      while (this.queue.length > 0 && performance.now() < deadline) await sleep(20);
      this.stop.abort();
      await this.worker;
      const left = this.queue.length;
      if (left > 0) {
        this.metrics.webhookEventsTotal.inc({ result: 'dropped' }, left);
        this.log.warn({ events: left, webhook: this.where }, 'webhook events undelivered at shutdown: dropped');
      }
      this.queue.clear();
      this.metrics.webhookEventsQueued.set(0);
    })();
    return this.closing;
  }

  private async deliverAll(): Promise<void> {
    let backoff = this.initialBackoffMs;
    for (let e = this.queue.peek(); e !== undefined && !this.stop.signal.aborted; e = this.queue.peek()) {
      const outcome = await this.attempt(e);
      if (outcome === 'retry') {
        this.metrics.webhookEventsTotal.inc({ result: 'retried' });
        await sleep(backoff, this.stop.signal);
        backoff = Math.min(backoff * 2, this.maxBackoffMs);
        continue;
      }
      backoff = this.initialBackoffMs;
      // The head may have been dropped by a full queue meanwhile: only remove it if it is still the head.
      if (this.queue.peek() === e) this.queue.shift();
      this.metrics.webhookEventsTotal.inc({ result: outcome });
      this.metrics.webhookEventsQueued.set(this.queue.length);
    }
  }

  private async attempt(e: QueuedEvent): Promise<'delivered' | 'rejected' | 'retry'> {
    let status: number;
    try {
      const res = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'pipecat-manager' },
        body: e.body,
        signal: AbortSignal.any([this.stop.signal, AbortSignal.timeout(this.requestTimeoutMs)]),
      });
      status = res.status;
      await res.body?.cancel().catch(() => undefined);
    } catch (err) {
      if (this.stop.signal.aborted) return 'retry';
      this.warnFailing(`request failed: ${redactSecrets(messageOf(err))}`);
      return 'retry';
    }
    if (status >= 200 && status < 300) {
      if (this.failing) {
        this.failing = false;
        this.log.info({ webhook: this.where, queued: this.queue.length }, 'webhook reachable again');
      }
      return 'delivered';
    }
    // 408 and 429 say "later"; any other 4xx says this event will never be accepted, so it must not block the rest.
    if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
      this.log.warn({ webhook: this.where, status, type: e.type }, 'webhook rejected an event: dropped');
      return 'rejected';
    }
    this.warnFailing(`status ${status}`);
    return 'retry';
  }

  // One line when delivery starts failing and one when it recovers, not one per retry.
  private warnFailing(reason: string): void {
    if (this.failing) return;
    this.failing = true;
    this.log.warn({ webhook: this.where, reason, queued: this.queue.length }, 'webhook delivery failing; retrying with backoff');
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
