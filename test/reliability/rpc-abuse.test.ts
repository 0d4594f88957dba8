// SPEC §13 (RPC) against a running App on the real RabbitMQ: malformed envelopes, wrong types, unknown routes,
// 5 MB bodies, requests without reply_to, siblings that never answer and a flood of requests at once. Every
// request with a reply_to gets exactly one reply with the right status, nothing is left unacked, nothing is
// written for a refused create, and the heap returns to its baseline.

import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcTestClient, type EventSubscription } from '../helpers/rpc-test-client.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';
import { MiB, heapAfterGc } from './support/resources.js';
import { RpcFlood, envelope, type FloodReply, type FloodRequest } from './support/rpc-flood.js';
import { byScale } from './support/scale.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = 'bin-manager.pipecat-manager.request.127.0.0.1';
const AI_MANAGER = 'bin-manager.ai-manager.request';
const FLOOD = 1_000;
const FLOOD_ROUNDS = byScale(1, 3);
const FIVE_MB = 5 * MiB;

let services: TestServices;
let t: TestApp;
let rpc: RpcTestClient;
let flood: RpcFlood;
let events: EventSubscription;
let heapBaseline = 0;
/** aicall ids whose ai-manager request is never answered. */
const silentAicalls = new Set<string>();

beforeAll(async () => {
  services = await createTestServices();
  // Limits raised far past the defaults: this file abuses the handlers behind them (rpc-limits.test.ts: the limits).
  t = await startTestApp(services, { RPC_MAX_REQUEST_BYTES: String(16 * MiB), LLM_MESSAGES_MAX_BYTES: String(8 * MiB), MESSAGE_TEXT_MAX_CHARS: String(8 * MiB) });
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  flood = await RpcFlood.connect(services.rabbitUrl);
  events = await rpc.subscribeEvents();
  await warmUp();
  flood.forget();
  events.events.length = 0;
  events.raw.length = 0;
  heapBaseline = await heapAfterGc();
});

/**
 * Every path the tests take, once, before the heap baseline: compiled code, the MySQL pool's connections, metric
 * label sets and the like grow once and stay. What must not grow is what the abuse leaves behind after that.
 */
async function warmUp(): Promise<void> {
  const ids = Array.from({ length: 40 }, () => randomUUID());
  const big = { id: randomUUID(), reference_type: 'call', llm_messages: [{ role: 'user', content: 'w'.repeat(FIVE_MB) }] };
  await flood.send(
    [
      ...ids.map((id) => ({ queue: SHARED, body: envelope('/v1/pipecatcalls', 'POST', { id, reference_type: 'call' }) })),
      ...Array.from({ length: 100 }, (_, i) => ({ queue: i % 2 === 0 ? SHARED : HOST, body: i % 4 < 2 ? randomBytes(32) : envelope('/v1/ping', 'GET') })),
      { queue: SHARED, body: envelope('/v1/pipecatcalls', 'POST', big) },
      { queue: SHARED, body: randomBytes(FIVE_MB) },
    ],
    'warm',
    60_000,
  );
  await flood.send([{ queue: SHARED, body: envelope(`/v1/pipecatcalls/${big.id}`, 'GET') }], 'warm-get', 30_000);
  await flood.send([...ids, big.id].map((id) => ({ queue: HOST, body: envelope(`/v1/pipecatcalls/${id}/stop`, 'POST') })), 'warm-stop', 30_000);
}

afterAll(async () => {
  await events?.close();
  await flood?.close();
  await rpc?.close();
  await t?.stop();
  await services?.dropAll();
});

const only = (replies: FloodReply[] | undefined, what: string): FloodReply => {
  expect(replies, `a reply to ${what}`).toBeDefined();
  expect(replies?.length, `exactly one reply to ${what}`).toBe(1);
  return (replies as FloodReply[])[0] as FloodReply;
};

const messageOf = (r: FloodReply): string => {
  const message = (r.json as { data?: { message?: unknown } }).data?.message;
  return typeof message === 'string' ? message : '';
};

async function unackedMessages(): Promise<string> {
  const { stdout } = await promisify(execFile)('rabbitmqctl', ['list_queues', '-q', '--no-table-headers', '-p', services.vhost, 'name', 'messages_ready', 'messages_unacknowledged'], { timeout: 30_000 });
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 3 && (f[0] ?? '').startsWith('bin-manager.pipecat-manager') && (f[1] !== '0' || f[2] !== '0'))
    .map((f) => f.join(' '))
    .join('; ');
}

describe('RPC abuse', () => {
  it('malformed envelopes get 400 with a reason on both queues, correlation_id and content type kept', async () => {
    const bodies: Array<[string, Buffer]> = [
      ['not JSON', Buffer.from('not json')],
      ['truncated JSON', Buffer.from('{"uri":"/v1/ping","method":"GET"')],
      ['empty body', Buffer.alloc(0)],
      ['a JSON array', Buffer.from('[]')],
      ['a JSON string', Buffer.from('"GET /v1/ping"')],
      ['a JSON number', Buffer.from('42')],
      ['JSON null', Buffer.from('null')],
      ['no uri', Buffer.from('{"method":"GET"}')],
      ['a numeric uri', Buffer.from('{"uri":5,"method":"GET"}')],
      ['no method', Buffer.from('{"uri":"/v1/ping"}')],
      ['a numeric method', Buffer.from('{"uri":"/v1/ping","method":7}')],
      ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x22, 0x7d])],
      ['a byte-order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), envelope('/v1/ping', 'GET')])],
      ['random bytes', randomBytes(300)],
    ];
    const requests: FloodRequest[] = bodies.flatMap(([, body]) => [
      { queue: SHARED, body },
      { queue: HOST, body },
    ]);
    const replies = await flood.send(requests, 'malformed', 10_000);
    replies.forEach((list, i) => {
      const what = `${bodies[Math.floor(i / 2)]?.[0] ?? ''} on ${requests[i]?.queue ?? ''}`;
      const r = only(list, what);
      expect(r.status, what).toBe(400);
      expect(r.contentType, what).toBe('text/plain');
      expect(r.correlationId, what).toBe(`malformed-${i}`);
      expect(messageOf(r), what).not.toBe('');
    });
    const invalid = await t.metrics.registry.getSingleMetricAsString('pipecat_manager_receive_request_process_time');
    expect(invalid).toMatch(/type="invalid"/);
  });

  it('wrong types in bodies get 400 naming the field; nothing is written or published', async () => {
    const id = (): string => randomUUID();
    const creates: Array<[string, unknown]> = [
      ['data is a string', 'hello'],
      ['data is an array', [1, 2]],
      ['id is a number', { id: 5, reference_type: 'call' }],
      ['id is empty', { id: '', reference_type: 'call' }],
      ['id is not a UUID', { id: 'not-a-uuid', reference_type: 'call' }],
      ['reference_type unknown', { id: id(), reference_type: 'bogus' }],
      ['reference_type a number', { id: id(), reference_type: 5 }],
      ['llm_type unknown vendor', { id: id(), reference_type: 'call', llm_type: 'nope.model' }],
      ['llm_type a number', { id: id(), reference_type: 'call', llm_type: 5 }],
      ['llm_messages a string', { id: id(), reference_type: 'call', llm_messages: 'x' }],
      ['llm_messages of numbers', { id: id(), reference_type: 'call', llm_messages: [5] }],
      ['llm_messages with a bad role', { id: id(), reference_type: 'call', llm_messages: [{ role: 'robot', content: 'x' }] }],
      ['stt_type unsupported', { id: id(), reference_type: 'call', stt_type: 'whisper' }],
      ['tts_type elevenlabs', { id: id(), reference_type: 'call', tts_type: 'elevenlabs' }],
      ['vad_config a string', { id: id(), reference_type: 'call', vad_config: 'x' }],
      ['vad_config out of range', { id: id(), reference_type: 'call', vad_config: { confidence: 2 } }],
      ['customer_id a number', { id: id(), reference_type: 'call', customer_id: 12 }],
      ['tts_voice_id an object', { id: id(), reference_type: 'call', tts_voice_id: { a: 1 } }],
      ['a 300-character string', { id: id(), reference_type: 'call', stt_language: 'x'.repeat(300) }],
      ['ai_call without reference_id', { id: id(), reference_type: 'ai_call' }],
    ];
    const messages: Array<[string, unknown]> = [
      ['message body a string', 'x'],
      ['message without pipecatcall_id', { message_text: 'hi' }],
      ['message_text a number', { pipecatcall_id: id(), message_text: 5 }],
      ['run_immediately a string', { pipecatcall_id: id(), message_text: 'hi', run_immediately: 'yes' }],
    ];
    const requests: FloodRequest[] = [
      ...creates.map(([, data]) => ({ queue: SHARED, body: envelope('/v1/pipecatcalls', 'POST', data) })),
      ...messages.map(([, data]) => ({ queue: HOST, body: envelope('/v1/messages', 'POST', data) })),
    ];
    const names = [...creates, ...messages].map(([n]) => n);
    const replies = await flood.send(requests, 'types', 10_000);
    replies.forEach((list, i) => {
      const r = only(list, names[i] ?? '');
      expect(r.status, names[i]).toBe(400);
      expect(messageOf(r).length, names[i]).toBeGreaterThan(5);
    });
    // Nothing was written for the creates that carried a valid id.
    const ids = creates.map(([, d]) => (d as { id?: unknown }).id).filter((x): x is string => typeof x === 'string' && x.length === 36);
    expect(ids.length).toBeGreaterThan(10);
    const gets = await flood.send(ids.map((x) => ({ queue: SHARED, body: envelope(`/v1/pipecatcalls/${x}`, 'GET') })), 'types-get');
    gets.forEach((list) => expect(only(list, 'GET of a refused create').status).toBe(404));
    const published = (events.events as Array<{ data?: { id?: string } }>).filter((e) => ids.includes(e.data?.id ?? ''));
    expect(published).toEqual([]);
  });

  it('unknown routes and ids get the bare 404 envelope', async () => {
    const routes: Array<[string, string]> = [
      ['/v1/nothing', 'GET'],
      ['/v2/pipecatcalls', 'POST'],
      ['/v1/pipecatcalls', 'PUT'],
      ['/v1/ping', 'PATCH'],
      ['/v1/pipecatcalls', 'OPTIONS'],
      ['/v1/messages', 'get'],
      ['/v1/pipecatcalls', 'DELETE'],
      [`/v1/pipecatcalls/${randomUUID()}`, 'DELETE'],
      [`/v1/pipecatcalls/${randomUUID().toUpperCase()}`, 'GET'],
      [`/v1/pipecatcalls/${randomUUID()}/extra`, 'GET'],
      [`/v1/pipecatcalls/${randomUUID()}/stop`, 'GET'],
      ['/v1/pipecatcalls/not-a-uuid/stop', 'POST'],
      ['', 'GET'],
      [`/v1/${'x'.repeat(100_000)}`, 'GET'],
      [`/v1/pipecatcalls/${randomUUID()}`, 'GET'],
      [`/v1/pipecatcalls/${randomUUID()}/stop`, 'POST'],
    ];
    const requests = routes.flatMap(([uri, method]) => [SHARED, HOST].map((queue) => ({ queue, body: envelope(uri, method) })));
    const replies = await flood.send(requests, 'routes', 10_000);
    replies.forEach((list, i) => {
      const what = `${routes[Math.floor(i / 2)]?.[1] ?? ''} ${(routes[Math.floor(i / 2)]?.[0] ?? '').slice(0, 60)}`;
      const r = only(list, what);
      expect(r.raw.toString(), what).toBe('{"status_code":404,"data_type":""}');
    });
  });

  it('5 MB bodies: garbage 400, unknown route 404, an oversized field 400, a ping 200, a huge context stored', async () => {
    const big = 'a'.repeat(FIVE_MB);
    const hugeCallId = randomUUID();
    const cases: Array<[string, FloodRequest, number]> = [
      ['5 MB of garbage', { queue: SHARED, body: randomBytes(FIVE_MB) }, 400],
      ['5 MB of truncated JSON', { queue: SHARED, body: Buffer.from(`{"uri":"/v1/ping","method":"GET","data":"${big}`) }, 400],
      ['5 MB to an unknown route', { queue: SHARED, body: envelope('/v1/nothing', 'POST', { blob: big }) }, 404],
      ['5 MB in one create field', { queue: SHARED, body: envelope('/v1/pipecatcalls', 'POST', { id: randomUUID(), reference_type: 'call', customer_id: big }) }, 400],
      ['5 MB in a message', { queue: HOST, body: envelope('/v1/messages', 'POST', { pipecatcall_id: randomUUID(), message_text: big }) }, 404],
      ['a 5 MB ping', { queue: HOST, body: envelope('/v1/ping', 'GET', { blob: big }) }, 200],
      [
        'a create with a 5 MB context',
        {
          queue: SHARED,
          body: envelope('/v1/pipecatcalls', 'POST', {
            id: hugeCallId,
            reference_type: 'call',
            llm_messages: Array.from({ length: 50 }, (_, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', content: 'b'.repeat(FIVE_MB / 50) })),
          }),
        },
        200,
      ],
    ];
    const replies = await flood.send(cases.map(([, r]) => r), 'huge', 60_000);
    replies.forEach((list, i) => {
      const [what, , status] = cases[i] ?? ['', undefined, 0];
      expect(only(list, what).status, what).toBe(status);
    });
    // The huge call works like any other: it can be read back and stopped.
    const [got] = await flood.send([{ queue: SHARED, body: envelope(`/v1/pipecatcalls/${hugeCallId}`, 'GET') }], 'huge-get', 30_000);
    const row = only(got, 'GET of the huge call').json as { data: { llm_messages: unknown[] } };
    expect(row.data.llm_messages).toHaveLength(50);
    const [stopped] = await flood.send([{ queue: HOST, body: envelope(`/v1/pipecatcalls/${hugeCallId}/stop`, 'POST') }], 'huge-stop', 30_000);
    expect(only(stopped, 'stop of the huge call').status).toBe(200);
  }, 120_000);

  it('requests without reply_to are handled and acked but not answered', async () => {
    const id = randomUUID();
    const requests: FloodRequest[] = [
      { queue: SHARED, body: envelope('/v1/pipecatcalls', 'POST', { id, reference_type: 'call' }), replyTo: false },
      { queue: SHARED, body: Buffer.from('garbage'), replyTo: false },
      { queue: HOST, body: envelope('/v1/nothing', 'GET'), replyTo: false },
      { queue: HOST, body: envelope('/v1/ping', 'GET'), replyTo: false },
    ];
    await flood.send(requests, 'noreply', 0);
    // Handled: the create happened (its created event is published, the row readable).
    await events.waitFor(1, 5_000);
    await waitUntil('the create without reply_to', () =>
      (events.events as Array<{ type: string; data: { id?: string } }>).some((e) => e.type === 'pipecatcall_created' && e.data.id === id),
    );
    const [got] = await flood.send([{ queue: SHARED, body: envelope(`/v1/pipecatcalls/${id}`, 'GET') }], 'noreply-get');
    expect(only(got, 'GET').status).toBe(200);
    // A stop without reply_to (how delayed stops arrive) ends the call.
    await flood.send([{ queue: HOST, body: envelope(`/v1/pipecatcalls/${id}/stop`, 'POST'), replyTo: false }], 'noreply-stop', 0);
    await waitUntil('the stop without reply_to', () => t.app.calls.session(id) === undefined);
    expect(flood.repliesWithPrefix('noreply')).toBe(0);
    expect(flood.repliesWithPrefix('noreply-stop')).toBe(0);
  });

  it('a sibling that never answers or does not exist makes a 500 with the reason; other requests are not held up', async () => {
    const asked = new Set<string>();
    await rpc.respondOn(AI_MANAGER, (req) => {
      const m = /^\/v1\/aicalls\/([0-9a-f-]{36})$/.exec(String(req.uri));
      if (m !== null) asked.add(m[1] ?? '');
      if (m !== null && silentAicalls.has(m[1] ?? '')) return undefined; // never answers
      return Buffer.from('{"status_code":404,"data_type":""}');
    });
    const silent = randomUUID();
    silentAicalls.add(silent);
    const stuckId = randomUUID();
    const missingId = randomUUID();
    const started = performance.now();
    const pending = flood.send(
      [{ queue: SHARED, body: envelope('/v1/pipecatcalls', 'POST', { id: stuckId, reference_type: 'ai_call', reference_id: silent }) }],
      'stuck',
      10_000,
    );
    // Once that handler waits for ai-manager (its request has arrived there), 200 pings and gets are answered at once.
    await waitUntil('the stuck create to ask ai-manager', () => asked.has(silent));
    const quick = await flood.send(
      Array.from({ length: 200 }, (_, i) => ({ queue: i % 2 === 0 ? HOST : SHARED, body: i % 2 === 0 ? envelope('/v1/ping', 'GET') : envelope(`/v1/pipecatcalls/${randomUUID()}`, 'GET') })),
      'quick',
      5_000,
    );
    const quickMs = performance.now() - started;
    quick.forEach((list, i) => expect(only(list, 'a request next to a stuck one').status).toBe(i % 2 === 0 ? 200 : 404));
    expect(quickMs).toBeLessThan(2_500);
    const [stuck] = await pending;
    const r = only(stuck, 'a create whose ai-manager never answers');
    expect(r.status).toBe(500);
    expect(messageOf(r)).toMatch(/ai-manager|aicalls.*timed out/);
    expect(performance.now() - started).toBeGreaterThan(2_900); // the 3 s RPC timeout of SPEC §4.3

    // ai-manager answers 404 for an unknown aicall: 500 naming the sibling's status.
    const [missing] = await flood.send(
      [{ queue: SHARED, body: envelope('/v1/pipecatcalls', 'POST', { id: missingId, reference_type: 'ai_call', reference_id: randomUUID() }) }],
      'missing',
      10_000,
    );
    expect(only(missing, 'a create whose aicall is unknown').status).toBe(500);
    expect(messageOf(only(missing, 'x'))).toMatch(/404/);
    // Nothing half-made: both rows are terminated and pipecatcall_terminated was published for each.
    for (const x of [stuckId, missingId]) {
      const [got] = await flood.send([{ queue: SHARED, body: envelope(`/v1/pipecatcalls/${x}`, 'GET') }], `half-${x}`);
      const row = only(got, 'GET').json as { status_code: number; data: { tm_delete: string } };
      expect(row.status_code).toBe(200);
      expect(row.data.tm_delete.startsWith('9999')).toBe(false);
      await waitUntil(`pipecatcall_terminated for ${x}`, () =>
        (events.events as Array<{ type: string; data: { id?: string } }>).some((e) => e.type === 'pipecatcall_terminated' && e.data.id === x),
      );
    }
  }, 30_000);

  it(`${FLOOD} requests at once, ${FLOOD_ROUNDS} time(s): every one answered once with the right status`, async () => {
    const existing = randomUUID();
    const [made] = await flood.send([{ queue: SHARED, body: envelope('/v1/pipecatcalls', 'POST', { id: existing, reference_type: 'call' }) }], 'flood-setup');
    expect(only(made, 'setup create').status).toBe(200);
    for (let round = 0; round < FLOOD_ROUNDS; round++) {
      const created: string[] = [];
      const plan: Array<[FloodRequest, number]> = Array.from({ length: FLOOD }, (_, i): [FloodRequest, number] => {
        switch (i % 10) {
          case 0:
          case 1:
          case 2:
          case 3:
            return [{ queue: HOST, body: envelope('/v1/ping', 'GET') }, 200];
          case 4:
          case 5:
            return [{ queue: SHARED, body: envelope(`/v1/pipecatcalls/${randomUUID()}`, 'GET') }, 404];
          case 6:
            return [{ queue: i % 20 === 6 ? SHARED : HOST, body: randomBytes(64) }, 400];
          case 7: {
            const id = randomUUID();
            created.push(id);
            return [{ queue: SHARED, body: envelope('/v1/pipecatcalls', 'POST', { id, reference_type: 'call', llm_type: 'local.echo' }) }, 200];
          }
          case 8:
            return [{ queue: SHARED, body: envelope(`/v1/pipecatcalls/${existing}`, 'GET') }, 200];
          default:
            return [{ queue: SHARED, body: envelope('/v1/pipecatcalls', 'POST', { id: randomUUID(), reference_type: 'call', stt_type: 'whisper' }) }, 400];
        }
      });
      const started = performance.now();
      const replies = await flood.send(plan.map(([r]) => r), `flood${round}`, 60_000);
      const ms = performance.now() - started;
      const wrong: string[] = [];
      replies.forEach((list, i) => {
        if (list === undefined || list.length !== 1 || list[0]?.status !== plan[i]?.[1]) {
          wrong.push(`#${i}: ${list === undefined ? 'no reply' : `${list.length} replies, status ${String(list[0]?.status)}`} (want ${plan[i]?.[1] ?? 0})`);
        }
      });
      console.log(`flood round ${round + 1}: ${FLOOD} requests answered in ${ms.toFixed(0)} ms`);
      expect(wrong.slice(0, 10)).toEqual([]);
      // The calls the flood created are live sessions waiting for Asterisk; stop them all, again all at once.
      const stops = await flood.send(created.map((id) => ({ queue: HOST, body: envelope(`/v1/pipecatcalls/${id}/stop`, 'POST') })), `stop${round}`, 60_000);
      stops.forEach((list) => expect(only(list, 'stop').status).toBe(200));
    }
    const [stopExisting] = await flood.send([{ queue: HOST, body: envelope(`/v1/pipecatcalls/${existing}/stop`, 'POST') }], 'flood-teardown');
    expect(only(stopExisting, 'stop').status).toBe(200);
  }, 180_000);

  it('afterwards: no handler stuck, nothing unacked, no live call left, heap back to its baseline', async () => {
    // Still answering, on both queues.
    const replies = await flood.send([{ queue: HOST, body: envelope('/v1/ping', 'GET') }, { queue: SHARED, body: envelope('/v1/ping', 'GET') }], 'final');
    replies.forEach((list) => expect(only(list, 'ping').status).toBe(200));
    await waitUntil('no live call', () => t.app.inspect().calls === 0);
    await waitUntil('every request acked', async () => (await unackedMessages()) === '', 10_000, 250).catch(() => undefined);
    expect(await unackedMessages()).toBe('');
    // What this test process itself kept (replies, events with 5 MB bodies) is not the daemon's.
    flood.forget();
    events.events.length = 0;
    events.raw.length = 0;
    const heap = await heapAfterGc();
    console.log(`heap after GC: ${(heapBaseline / MiB).toFixed(1)} MiB before the abuse, ${(heap / MiB).toFixed(1)} MiB after`);
    expect(heap - heapBaseline).toBeLessThan(5 * MiB);
  }, 60_000);
});
