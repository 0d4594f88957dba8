// Issue 12, item 5, over the real RabbitMQ with the default limits: a 20 MB request, JSON nested 100,000 deep, an
// oversized or too deep llm_messages and an oversized message_text are each a 400 naming the limit, nothing is
// written, and the daemon carries on (a ping right after is answered).

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcTestClient, goRequestBody } from '../helpers/rpc-test-client.js';
import { TestCaller } from '../helpers/caller.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = 'bin-manager.pipecat-manager.request.127.0.0.1';

let services: TestServices;
let t: TestApp;
let rpc: RpcTestClient;

beforeAll(async () => {
  services = await createTestServices();
  t = await startTestApp(services, { UNKNOWN_CALLS: 'accept', DEFAULT_STT_TYPE: '', DEFAULT_TTS_TYPE: '' });
  rpc = await RpcTestClient.connect(services.rabbitUrl);
});

afterAll(async () => {
  await rpc?.close();
  await t?.stop();
  await services?.dropAll();
});

type Reply = { status_code: number; data?: { message?: string } };

async function send(queue: string, body: Buffer, timeoutMs = 10_000): Promise<Reply> {
  return (await rpc.request(queue, body, { timeoutMs })).json as Reply;
}

function create(data: Record<string, unknown>): Buffer {
  return goRequestBody({ uri: '/v1/pipecatcalls', method: 'POST', data });
}

async function expectAlive(): Promise<void> {
  expect((await send(HOST, goRequestBody({ uri: '/v1/ping', method: 'GET' }))).status_code).toBe(200);
}

describe('RPC request limits', () => {
  it('answers a 20 MB request 400 naming RPC_MAX_REQUEST_BYTES, without parsing it', async () => {
    const id = randomUUID();
    const body = create({ id, reference_type: 'call', llm_messages: [{ role: 'user', content: 'x'.repeat(20 * 1024 * 1024) }] });
    const r = await send(SHARED, body, 30_000);
    expect(r.status_code).toBe(400);
    expect(r.data?.message).toMatch(/RPC_MAX_REQUEST_BYTES/);
    expect((await send(SHARED, goRequestBody({ uri: `/v1/pipecatcalls/${id}`, method: 'GET' }))).status_code).toBe(404);
    await expectAlive();
  });

  it('answers JSON nested 100,000 deep with 400', async () => {
    const deep = `{"uri":"/v1/pipecatcalls","method":"POST","data_type":"application/json","data":{"id":"${randomUUID()}","reference_type":"call","x":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`;
    const r = await send(SHARED, Buffer.from(deep));
    expect(r.status_code).toBe(400);
    expect(r.data?.message).toMatch(/nests deeper/);
    await expectAlive();
  });

  it('refuses llm_messages over LLM_MESSAGES_MAX_BYTES or LLM_MESSAGES_MAX_DEPTH with 400 and no row', async () => {
    const big = randomUUID();
    const rBig = await send(SHARED, create({ id: big, reference_type: 'call', llm_messages: [{ role: 'user', content: 'y'.repeat(300 * 1024) }] }));
    expect(rBig.status_code).toBe(400);
    expect(rBig.data?.message).toMatch(/LLM_MESSAGES_MAX_BYTES/);
    // 40 levels: past MariaDB's JSON depth limit of 32, which once turned this into a 500.
    let nested: unknown = 'deep';
    for (let i = 0; i < 40; i++) nested = [nested];
    const deep = randomUUID();
    const rDeep = await send(SHARED, create({ id: deep, reference_type: 'call', llm_messages: [{ role: 'user', content: nested }] }));
    expect(rDeep.status_code).toBe(400);
    expect(rDeep.data?.message).toMatch(/LLM_MESSAGES_MAX_DEPTH/);
    for (const id of [big, deep]) {
      expect((await send(SHARED, goRequestBody({ uri: `/v1/pipecatcalls/${id}`, method: 'GET' }))).status_code).toBe(404);
    }
    // Under the limits a context with tool calls is taken as before.
    const ok = randomUUID();
    const rOk = await send(
      SHARED,
      create({
        id: ok,
        reference_type: 'call',
        llm_messages: [
          { role: 'system', content: 'z'.repeat(100 * 1024) },
          { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":[1]}' } }] },
        ],
      }),
    );
    expect(rOk.status_code).toBe(200);
    await send(HOST, goRequestBody({ uri: `/v1/pipecatcalls/${ok}/stop`, method: 'POST' }));
  });

  it('refuses a message_text over MESSAGE_TEXT_MAX_CHARS with 400; a normal one reaches the call', async () => {
    const id = randomUUID();
    const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, 8000);
    try {
      await caller.until(() => t.app.calls.session(id)?.sessionStarted === true, 'the call');
      const message = (text: string): Buffer =>
        goRequestBody({ uri: '/v1/messages', method: 'POST', data: { pipecatcall_id: id, message_id: randomUUID(), message_text: text } });
      const tooLong = await send(HOST, message('m'.repeat(8193)));
      expect(tooLong.status_code).toBe(400);
      expect(tooLong.data?.message).toMatch(/MESSAGE_TEXT_MAX_CHARS/);
      expect((await send(HOST, message('m'.repeat(8192)))).status_code).toBe(200);
    } finally {
      await caller.hangup();
      await t.app.calls.terminate(id, 'stop');
    }
  });
});
