// src/rpc against the real RabbitMQ in a vhost of its own, driven by an independent Go-style peer: envelopes
// byte for byte, status codes, ack after the handler, topology, outbound RPC, events, and recovery.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadRequestError, DependencyError, statusOf } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { Broker } from '../../src/rpc/broker.js';
import { RpcClient, RpcStatusError } from '../../src/rpc/client.js';
import {
  encodeRequest,
  encodeResponse,
  errorResponse,
  okJson,
  parseRequest,
  parseResponse,
  type RpcRequest,
  type RpcResponse,
} from '../../src/rpc/envelope.js';
import { EventPublisher } from '../../src/rpc/events.js';
import { RpcServer } from '../../src/rpc/server.js';
import {
  DELAY_EXCHANGE,
  DELAY_UNAVAILABLE_WARNING,
  EVENT_EXCHANGE,
  SHARED_QUEUE,
  declareTopology,
  perHostQueue,
  type Topology,
} from '../../src/rpc/topology.js';
import { closeAllConnections, createTestVhost, type TestVhost } from '../helpers/rabbit.js';
import { RpcTestClient } from '../helpers/rpc-test-client.js';
import { waitUntil } from '../helpers/wait.js';

const POD_IP = '10.1.2.3';
const HOST_QUEUE = perHostQueue(POD_IP);
const CALL_MANAGER = 'bin-manager.call-manager.request';

const logLines: Array<{ level: string; msg: string }> = [];
const log = createLogger('debug', { write: (s: string) => void logLines.push(JSON.parse(s) as { level: string; msg: string }) });
const metrics = new Metrics({ defaultMetrics: false });

let vhost: TestVhost;
let broker: Broker;
let topology: Topology;
let server: RpcServer;
let events: EventPublisher;
let rpc: RpcClient;
let peer: RpcTestClient;
const handled: RpcRequest[] = [];
let waiting = 0;
let openGate = (): void => undefined;
let gate = Promise.resolve();

async function handler(req: RpcRequest): Promise<RpcResponse> {
  handled.push(req);
  switch (req.uri) {
    case '/v1/ping':
      return okJson(`{"host_id":"${POD_IP}"}`);
    case '/v1/echo':
      return okJson(JSON.stringify({ publisher: req.publisher, data_type: req.dataType, data: req.data ?? null }));
    case '/v1/wait':
      waiting++;
      await gate;
      return okJson('{}');
    case '/v1/boom':
      await Promise.resolve();
      throw new Error('kaboom');
    default:
      return errorResponse(404);
  }
}

const routeLabel = (req: RpcRequest): string => (['/v1/ping', '/v1/echo', '/v1/boom'].includes(req.uri) ? req.uri : 'notfound');

/** The value of one series: a histogram's `_count`, or a counter. */
async function observations(
  metric: Metrics['receiveRequestProcessTime'] | Metrics['notifyTotal'],
  labels: Record<string, string>,
): Promise<number> {
  const { values } = await metric.get();
  for (const v of values) {
    const name = (v as { metricName?: string }).metricName;
    if (name !== undefined && !name.endsWith('_count')) continue;
    const l = v.labels as Record<string, unknown>;
    if (Object.entries(labels).every(([k, want]) => l[k] === want)) return v.value;
  }
  return 0;
}

beforeAll(async () => {
  vhost = await createTestVhost();
  broker = await Broker.connect(vhost.url, log);
  topology = await declareTopology(broker, POD_IP, log);
  events = new EventPublisher({ broker, metrics, log });
  server = new RpcServer({ broker, queues: topology.queues, handler, routeLabel, metrics, log, prefetch: 8 });
  await server.start();
  rpc = new RpcClient({ broker, metrics, log });
  peer = await RpcTestClient.connect(vhost.url);
});

afterAll(async () => {
  await server?.stop();
  rpc?.close();
  events?.close();
  await broker?.close();
  await peer?.close();
  await vhost?.drop();
});

describe('envelopes', () => {
  it('encodes responses byte for byte', () => {
    expect(encodeResponse(okJson('{"a":1}')).toString()).toBe('{"status_code":200,"data_type":"application/json","data":{"a":1}}');
    expect(encodeResponse(errorResponse(404)).toString()).toBe('{"status_code":404,"data_type":""}');
    expect(encodeResponse(errorResponse(400, 'bad <id> & "x"')).toString()).toBe(
      '{"status_code":400,"data_type":"application/json","data":{"message":"bad \\u003cid\\u003e \\u0026 \\"x\\""}}',
    );
    expect(encodeResponse(errorResponse(500)).toString()).toBe(
      '{"status_code":500,"data_type":"application/json","data":{"message":"internal error"}}',
    );
    expect(encodeResponse(errorResponse(404, 'no session')).toString()).toBe(
      '{"status_code":404,"data_type":"application/json","data":{"message":"no session"}}',
    );
  });

  it('encodes requests byte for byte', () => {
    expect(encodeRequest({ uri: '/v1/calls/1', method: 'GET', publisher: 'pipecat-manager' }).toString()).toBe(
      '{"uri":"/v1/calls/1","method":"GET","publisher":"pipecat-manager","data_type":""}',
    );
    expect(encodeRequest({ uri: '/v1/external-medias', method: 'POST', publisher: 'pipecat-manager', data: '{"id":"x"}' }).toString()).toBe(
      '{"uri":"/v1/external-medias","method":"POST","publisher":"pipecat-manager","data_type":"application/json","data":{"id":"x"}}',
    );
  });

  it('parses requests and refuses malformed ones with 400', () => {
    const bad = ['not json', '[1]', 'null', '{"uri":1,"method":"GET"}', '{"uri":"/v1/x"}', '{"uri":"/v1/x","method":7}'];
    for (const b of bad) {
      const err = (() => {
        try {
          parseRequest(Buffer.from(b));
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err, b).toBeInstanceOf(BadRequestError);
      expect(statusOf(err)).toBe(400);
    }
    const req = parseRequest(
      Buffer.from('{"uri":"/v1/pipecatcalls","method":"POST","publisher":"ai-manager","data_type":"application/json","data":{"id":"a","n":[1]},"request_id":"r","extra":true}'),
    );
    expect(req).toEqual({ uri: '/v1/pipecatcalls', method: 'POST', publisher: 'ai-manager', dataType: 'application/json', data: { id: 'a', n: [1] } });
    // A method outside SPEC §4.1's four is well-formed and routed; no route takes it (a 404, not a 400).
    expect(parseRequest(Buffer.from('{"uri":"/v1/ping","method":"PATCH"}')).method).toBe('OTHER');
    expect(parseRequest(Buffer.from('{"uri":"/v1/ping","method":"GET"}'))).toEqual({
      uri: '/v1/ping',
      method: 'GET',
      publisher: '',
      dataType: '',
      data: undefined,
    });
    expect(parseResponse(Buffer.from('{"status_code":404,"data_type":""}'))).toEqual({ statusCode: 404, dataType: '', data: undefined });
    expect(() => parseResponse(Buffer.from('{"status_code":"200"}'))).toThrow(/status_code/);
  });
});

describe('RpcServer', () => {
  it('answers on the shared and the per-host queue', async () => {
    for (const queue of [SHARED_QUEUE, HOST_QUEUE]) {
      const reply = await peer.request(queue, { uri: '/v1/ping', method: 'GET' });
      expect(reply.raw.toString()).toBe(`{"status_code":200,"data_type":"application/json","data":{"host_id":"${POD_IP}"}}`);
      expect(reply.properties.contentType).toBe('text/plain');
      expect(reply.properties.correlationId).toBeUndefined();
    }
  });

  it('hands the handler the embedded data and copies correlation_id', async () => {
    const reply = await peer.request(
      SHARED_QUEUE,
      { uri: '/v1/echo', method: 'POST', data: { id: 'x', list: [1, 'two'] } },
      { correlationId: 'corr-1' },
    );
    expect(reply.properties.correlationId).toBe('corr-1');
    expect(reply.json).toEqual({
      status_code: 200,
      data_type: 'application/json',
      data: { publisher: 'test-manager', data_type: 'application/json', data: { id: 'x', list: [1, 'two'] } },
    });
  });

  it('answers malformed requests with 400 and counts them as invalid', async () => {
    const before = await observations(metrics.receiveRequestProcessTime, { type: 'invalid' });
    const notJson = await peer.request(SHARED_QUEUE, Buffer.from('{"uri":'));
    expect(notJson.json).toEqual({ status_code: 400, data_type: 'application/json', data: { message: 'request is not a JSON object' } });
    const uriNumber = await peer.request(HOST_QUEUE, Buffer.from('{"uri":5,"method":"GET"}'));
    expect(uriNumber.json).toMatchObject({ status_code: 400, data: { message: 'request uri must be a string' } });
    await waitUntil('two invalid requests to be counted', async () => (await observations(metrics.receiveRequestProcessTime, { type: 'invalid' })) === before + 2);
  });

  it('answers a failing handler with 500 and the reason only', async () => {
    const reply = await peer.request(SHARED_QUEUE, { uri: '/v1/boom', method: 'POST' });
    expect(reply.raw.toString()).toBe('{"status_code":500,"data_type":"application/json","data":{"message":"kaboom"}}');
  });

  it('answers an unknown route with the bare 404', async () => {
    const reply = await peer.request(HOST_QUEUE, { uri: '/v1/nothing', method: 'DELETE' });
    expect(reply.raw.toString()).toBe('{"status_code":404,"data_type":""}');
    await waitUntil('the DELETE to be counted as notfound', async () => (await observations(metrics.receiveRequestProcessTime, { type: 'notfound', method: 'DELETE' })) === 1);
  });

  it('runs handlers concurrently', async () => {
    gate = new Promise<void>((resolve) => (openGate = resolve));
    const replies = Promise.all(Array.from({ length: 5 }, () => peer.request(SHARED_QUEUE, { uri: '/v1/wait', method: 'GET' })));
    await waitUntil('five handlers waiting', () => waiting === 5);
    openGate();
    expect((await replies).map((r) => r.raw.toString())).toEqual(Array(5).fill('{"status_code":200,"data_type":"application/json","data":{}}'));
  });

  it('runs a request without reply_to and acks it', async () => {
    await peer.sendWithoutReplyTo(SHARED_QUEUE, { uri: '/v1/echo', method: 'POST', data: { marker: 'no-reply' } });
    await waitUntil('the request without reply_to to be handled', () => handled.some((r) => (r.data as { marker?: string } | undefined)?.marker === 'no-reply'));
    const q = await peer.withChannel((ch) => ch.checkQueue(SHARED_QUEUE));
    expect(q.messageCount).toBe(0);
    expect(q.consumerCount).toBe(1);
    expect(logLines.some((l) => l.msg === 'could not send an RPC reply')).toBe(false);
  });

  it('acks only after the handler finished: an unfinished request is redelivered', async () => {
    const queue = 'test.ack';
    await peer.withChannel((ch) => ch.assertQueue(queue, { durable: false, autoDelete: false }));
    const b2 = await Broker.connect(vhost.url, log);
    let releaseSlow = (): void => undefined;
    const slowGate = new Promise<void>((resolve) => (releaseSlow = resolve));
    let slowStarted = false;
    const server2 = new RpcServer({
      broker: b2,
      queues: [queue],
      handler: async (req) => {
        if (req.uri === '/v1/slow') {
          slowStarted = true;
          await slowGate;
        }
        return okJson('{}');
      },
      routeLabel: (req) => `ack${req.uri}`,
      metrics,
      log,
    });
    await server2.start();

    // A fast request is acked once handled: it must not come back when the connection goes.
    await peer.sendWithoutReplyTo(queue, { uri: '/v1/fast', method: 'POST' });
    await waitUntil('the fast request to be counted', async () => (await observations(metrics.receiveRequestProcessTime, { type: 'ack/v1/fast' })) === 1);

    await peer.sendWithoutReplyTo(queue, { uri: '/v1/slow', method: 'POST' });
    await waitUntil('the slow handler to start', () => slowStarted);
    expect((await peer.withChannel((ch) => ch.checkQueue(queue))).messageCount).toBe(0); // delivered, not acked

    await b2.close(); // the handler is still running: its message goes back to the queue
    await waitUntil('the unacked request to be back on its queue', async () => (await peer.withChannel((ch) => ch.checkQueue(queue))).messageCount === 1);
    const back = await peer.withChannel((ch) => ch.get(queue, { noAck: true }));
    expect(back && back.fields.redelivered).toBe(true);
    expect(back && JSON.parse(back.content.toString())).toMatchObject({ uri: '/v1/slow' });

    releaseSlow();
    await server2.stop(); // the late ack on the dead channel is logged, not thrown
    expect(logLines.some((l) => l.msg === 'could not ack an RPC request (channel closed)')).toBe(true);
    expect(() => b2.publish('', queue, Buffer.from('x'))).toThrow(/RabbitMQ is not connected/);
    await peer.withChannel((ch) => ch.deleteQueue(queue));
  });
});

describe('topology', () => {
  it('declares the queues and exchanges of SPEC §4.2', async () => {
    const rejects = (fn: Parameters<RpcTestClient['withChannel']>[0]): Promise<void> =>
      expect(peer.withChannel(fn)).rejects.toThrow(/PRECONDITION_FAILED|NOT_FOUND|Channel ended/);
    // Re-declaring with equal properties succeeds; any difference is refused by the server.
    await peer.withChannel((ch) => ch.assertQueue(SHARED_QUEUE, { durable: true, exclusive: false, autoDelete: false }));
    await rejects((ch) => ch.assertQueue(SHARED_QUEUE, { durable: false, autoDelete: false }));
    await peer.withChannel((ch) => ch.assertQueue(HOST_QUEUE, { durable: false, exclusive: false, autoDelete: true }));
    await rejects((ch) => ch.assertQueue(HOST_QUEUE, { durable: true, autoDelete: true }));
    await peer.withChannel((ch) => ch.assertExchange(EVENT_EXCHANGE, 'fanout', { durable: true }));
    await rejects((ch) => ch.assertExchange(EVENT_EXCHANGE, 'direct', { durable: true }));
    // No delayed-message plugin on this RabbitMQ: no exchange, one warning, and the server works (tests above).
    await rejects((ch) => ch.checkExchange(DELAY_EXCHANGE));
    expect(topology.delayedAvailable).toBe(false);
    expect(logLines.filter((l) => l.msg === DELAY_UNAVAILABLE_WARNING)).toHaveLength(1);
    expect(broker.isConnected).toBe(true);
    await broker.ping();
  });

  it('reports a broker it cannot reach without the credentials', async () => {
    const err = await Broker.connect('amqp://guest:hunter2@127.0.0.1:1/x', log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DependencyError);
    expect((err as Error).message).toMatch(/^cannot connect to RabbitMQ at 127\.0\.0\.1:1: /);
    expect((err as Error).message).not.toContain('hunter2');
  });
});

describe('RpcClient', () => {
  const received: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    await peer.respondOn(CALL_MANAGER, (req) => {
      received.push(req);
      if (req.uri === '/v1/calls/ok') return Buffer.from('{"status_code":200,"data_type":"application/json","data":{"id":"abc"}}');
      if (req.uri === '/v1/external-medias') return Buffer.from(`{"status_code":200,"data_type":"application/json","data":${JSON.stringify(req.data)}}`);
      if (req.uri === '/v1/calls/missing') return Buffer.from('{"status_code":404,"data_type":""}');
      if (req.uri === '/v1/calls/refused') return Buffer.from('{"status_code":400,"data_type":"application/json","data":{"message":"bad id"}}');
      return undefined; // silent: the caller times out
    });
  });

  it('returns a success reply and sends the Go envelope', async () => {
    expect(await rpc.request(CALL_MANAGER, { uri: '/v1/calls/ok', method: 'GET' })).toEqual({ statusCode: 200, data: { id: 'abc' } });
    expect(received.at(-1)).toEqual({ uri: '/v1/calls/ok', method: 'GET', publisher: 'pipecat-manager', data_type: '' });
    const body = { id: 'x', reference_type: 'call' };
    expect(await rpc.request(CALL_MANAGER, { uri: '/v1/external-medias', method: 'POST', data: body })).toEqual({ statusCode: 200, data: body });
    expect(received.at(-1)).toMatchObject({ data_type: 'application/json', data: body });
    expect(await observations(metrics.requestProcessTime, { target: 'call-manager', resource: 'calls', method: 'GET' })).toBe(1);
  });

  it('keeps concurrent requests apart', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => rpc.request(CALL_MANAGER, { uri: '/v1/external-medias', method: 'POST', data: { i } })));
    expect(results.map((r) => (r.data as { i: number }).i)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('turns a status ≥ 300 into an RpcStatusError', async () => {
    const err = await rpc.request(CALL_MANAGER, { uri: '/v1/calls/missing', method: 'GET' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcStatusError);
    expect(err).toBeInstanceOf(DependencyError);
    expect((err as RpcStatusError).statusCode).toBe(404);
    const refused = await rpc.request(CALL_MANAGER, { uri: '/v1/calls/refused', method: 'GET' }).catch((e: unknown) => e);
    expect((refused as RpcStatusError).statusCode).toBe(400);
    expect((refused as Error).message).toBe('GET /v1/calls/refused to bin-manager.call-manager.request failed with status 400: bad id');
  });

  it('times out, and fails fast for a queue that does not exist', async () => {
    const err = await rpc.request(CALL_MANAGER, { uri: '/v1/calls/silent', method: 'GET' }, { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DependencyError);
    expect((err as DependencyError).dependency).toBe('call-manager');
    expect((err as Error).message).toBe('GET /v1/calls/silent to bin-manager.call-manager.request timed out after 200 ms');
    const t0 = Date.now();
    const missing = await rpc.request('bin-manager.nobody.request', { uri: '/v1/x', method: 'GET' }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(DependencyError);
    expect(Date.now() - t0).toBeLessThan(1_000);
  });
});

describe('EventPublisher', () => {
  it('publishes the exact envelope to the fanout exchange', async () => {
    const sub = await peer.subscribeEvents();
    events.publish('pipecatcall_created', '{"id":"a","text":"\\u003c"}');
    await sub.waitFor(1);
    expect(sub.raw[0]?.toString()).toBe(
      '{"type":"pipecatcall_created","publisher":"pipecat-manager","data_type":"application/json","data":{"id":"a","text":"\\u003c"}}',
    );
    expect(await observations(metrics.notifyTotal, { type: 'pipecatcall_created' })).toBe(1);
    await sub.close();
  });
});

describe('recovery', () => {
  it('after the server drops the connection: pending RPCs fail, consumers come back, buffered events arrive in order', async () => {
    const keep = 'test.events.keep';
    // A plain queue (no consumer yet) keeps every event across the outage, including our own dropped connection.
    await peer.withChannel(async (ch) => {
      await ch.assertQueue(keep, { durable: false, exclusive: false, autoDelete: false });
      await ch.bindQueue(keep, EVENT_EXCHANGE, '');
    });
    const pending = rpc.request(CALL_MANAGER, { uri: '/v1/calls/silent', method: 'GET' }, { timeoutMs: 20_000 }).catch((e: unknown) => e);
    events.publish('test_event', '{"n":1}');
    broker.once('disconnected', () => {
      // Published while down: buffered and flushed on reconnect.
      events.publish('test_event', '{"n":2}');
      events.publish('test_event', '{"n":3}');
    });
    const reconnected = new Promise<void>((resolve) => broker.once('connected', resolve));

    await closeAllConnections(vhost.vhost);
    const lost = await pending;
    expect(lost).toBeInstanceOf(DependencyError);
    expect((lost as Error).message).toMatch(/connection lost/);
    await reconnected;
    events.publish('test_event', '{"n":4}');

    const peer2 = await RpcTestClient.connect(vhost.url);
    try {
      for (const queue of [SHARED_QUEUE, HOST_QUEUE]) {
        expect((await peer2.request(queue, { uri: '/v1/ping', method: 'GET' })).json).toMatchObject({ status_code: 200 });
      }
      const sub = await peer2.subscribeEvents({ queue: keep });
      await sub.waitFor(4);
      expect(sub.events).toEqual([1, 2, 3, 4].map((n) => ({ type: 'test_event', publisher: 'pipecat-manager', data_type: 'application/json', data: { n } })));
      expect(logLines.filter((l) => l.msg === DELAY_UNAVAILABLE_WARNING)).toHaveLength(1);
      expect(logLines.some((l) => l.msg === 'flushed buffered events')).toBe(true);
      expect(logLines.some((l) => l.msg === 'reconnected to RabbitMQ')).toBe(true);
      await peer2.respondOn(CALL_MANAGER, () => Buffer.from('{"status_code":200,"data_type":"application/json","data":{}}'));
      expect(await rpc.request(CALL_MANAGER, { uri: '/v1/calls/any', method: 'GET' })).toEqual({ statusCode: 200, data: {} });
      await sub.close();
    } finally {
      await peer2.close();
    }
  });
});
