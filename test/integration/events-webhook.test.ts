// EVENTS_WEBHOOK_URL delivery against a real local HTTP receiver: in order, retried with backoff through errors
// and an unreachable receiver, a bounded queue that drops (and counts) the oldest, rejected events not blocking.

import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics.js';
import { EventsWebhook } from '../../src/rpc/events-webhook.js';
import { testLogger } from '../helpers/services.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';
import { waitUntil } from '../helpers/wait.js';

const opened: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});

async function count(metrics: Metrics, result: string): Promise<number> {
  const { values } = await metrics.webhookEventsTotal.get();
  return values.find((v) => v.labels.result === result)?.value ?? 0;
}

function webhook(url: string, metrics: Metrics, extra: { queueLimit?: number } = {}): EventsWebhook {
  const w = new EventsWebhook({ url, metrics, log: testLogger(), initialBackoffMs: 20, maxBackoffMs: 80, ...extra });
  opened.push({ close: () => w.close(0) });
  return w;
}

describe('events webhook', () => {
  it('delivers the SPEC §7.1 envelope in order', async () => {
    const rx = await WebhookReceiver.start();
    opened.push(rx);
    const metrics = new Metrics({ defaultMetrics: false });
    const w = webhook(rx.url, metrics);
    for (let i = 0; i < 20; i++) w.publish('message_bot_transcription', `{"id":"m${i}","text":"line ${i}"}`);
    await rx.until(() => rx.events.length === 20, '20 events');
    expect(rx.events.map((e) => e.data.id)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    expect(rx.bodies[0]).toBe(
      '{"type":"message_bot_transcription","publisher":"pipecat-manager","data_type":"application/json","data":{"id":"m0","text":"line 0"}}',
    );
    // The sender counts a delivery when the receiver's answer is back, a moment after the receiver saw it.
    await waitUntil('20 deliveries counted', async () => (await count(metrics, 'delivered')) === 20);
    expect(await metrics.webhookEventsQueued.get()).toMatchObject({ values: [{ value: 0 }] });
  });

  it('retries through 5xx answers with backoff, keeping the order', async () => {
    const rx = await WebhookReceiver.start();
    opened.push(rx);
    rx.failNext = 3;
    rx.failStatus = 503;
    const metrics = new Metrics({ defaultMetrics: false });
    const w = webhook(rx.url, metrics);
    const started = performance.now();
    w.publish('pipecatcall_created', '{"id":"a"}');
    w.publish('pipecatcall_terminated', '{"id":"a"}');
    await rx.until(() => rx.events.length === 2, 'both events');
    // Three failed attempts waited 20 + 40 + 80 ms at least before the first success.
    expect(performance.now() - started).toBeGreaterThanOrEqual(130);
    expect(rx.events.map((e) => e.type)).toEqual(['pipecatcall_created', 'pipecatcall_terminated']);
    expect(rx.attempts).toBe(5);
    expect(await count(metrics, 'retried')).toBe(3);
    // Counted when the receiver's answer is back, a moment after it saw the event (as in the first test).
    await waitUntil('2 deliveries counted', async () => (await count(metrics, 'delivered')) === 2);
  });

  it('drops an event the receiver rejects (4xx) instead of blocking the ones behind it', async () => {
    const rx = await WebhookReceiver.start();
    opened.push(rx);
    rx.failNext = 1;
    rx.failStatus = 422;
    const metrics = new Metrics({ defaultMetrics: false });
    const w = webhook(rx.url, metrics);
    w.publish('x', '{"id":"rejected"}');
    w.publish('x', '{"id":"kept"}');
    await rx.until(() => rx.events.length === 1, 'the second event');
    expect(rx.events[0]?.data.id).toBe('kept');
    expect(await count(metrics, 'rejected')).toBe(1);
  });

  it('bounds the queue while the receiver is down, then delivers the newest once it is back', async () => {
    // A port with nothing listening: connection refused, then a receiver appears on the same port.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const metrics = new Metrics({ defaultMetrics: false });
    const w = webhook(`http://127.0.0.1:${port}/hook`, metrics, { queueLimit: 5 });
    for (let i = 0; i < 12; i++) w.publish('x', `{"id":"e${i}"}`);
    expect(w.queued).toBe(5);
    expect(await count(metrics, 'dropped')).toBe(7);
    await waitUntil('a failed attempt to be counted as retried', async () => (await count(metrics, 'retried')) >= 1);

    const events: string[] = [];
    const { createServer: createHttp } = await import('node:http');
    const server = createHttp((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        events.push((JSON.parse(body) as { data: { id: string } }).data.id);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    opened.push({ close: () => new Promise<void>((r) => server.close(() => r())) });
    await waitUntil('5 events at the receiver', () => events.length >= 5, 10_000);
    expect(events).toEqual(['e7', 'e8', 'e9', 'e10', 'e11']);
  });

  it('close gives queued events a grace period, then drops and counts the rest; publish after close is dropped', async () => {
    const rx = await WebhookReceiver.start();
    opened.push(rx);
    rx.failNext = 1_000;
    const metrics = new Metrics({ defaultMetrics: false });
    const w = new EventsWebhook({ url: rx.url, metrics, log: testLogger(), initialBackoffMs: 10, maxBackoffMs: 10 });
    w.publish('x', '{"id":"1"}');
    w.publish('x', '{"id":"2"}');
    const started = performance.now();
    await w.close(150);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(w.queued).toBe(0);
    expect(await count(metrics, 'dropped')).toBe(2);
    w.publish('x', '{"id":"3"}');
    expect(await count(metrics, 'dropped')).toBe(3);
    await w.close(); // idempotent
    // A request aborted by close may still reach the receiver a moment later; after that, nothing more is sent.
    await new Promise((r) => setTimeout(r, 200));
    const attempts = rx.attempts;
    await new Promise((r) => setTimeout(r, 200));
    expect(rx.attempts).toBe(attempts);
  });
});
