// Admission control end to end on a real App: MAX_CALLS refuses the call beyond the cap with a clear RPC answer,
// and a refusing instance leaves the shared RabbitMQ queue (its requests wait for another instance), answers
// /readyz 503 with the reason, closes unknown Audiosocket connections, and counts the refusals — then takes
// calls again once below the cap or out of overload. Behaviour only: the figures are `npm run bench`'s.

import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AudiosocketClient } from '../../src/transports/audiosocket/client.js';
import { RpcTestClient } from '../helpers/rpc-test-client.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = 'bin-manager.pipecat-manager.request.127.0.0.1';

let services: TestServices;
let t: TestApp;
let rpc: RpcTestClient;
let conn: ChannelModel;
let ch: Channel;

beforeAll(async () => {
  services = await createTestServices();
  // Headroom sampling off: on a loaded test machine it could refuse on its own; the forced signal stands in.
  t = await startTestApp(services, { MAX_CALLS: '2', ADMISSION_CONTROL: 'off', UNKNOWN_CALLS: 'accept' });
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  conn = await amqp.connect(services.rabbitUrl);
  ch = await conn.createChannel();
});

afterAll(async () => {
  await ch?.close().catch(() => undefined);
  await conn?.close().catch(() => undefined);
  await rpc?.close();
  await t?.stop();
  await services?.dropAll();
});

async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 5000): Promise<void> {
  await waitUntil(what, check, timeoutMs, 20);
}

const consumers = async (): Promise<number> => (await ch.checkQueue(SHARED)).consumerCount;

async function readyz(): Promise<{ status: number; checks: Record<string, string> }> {
  const res = await fetch(`http://127.0.0.1:${t.app.addresses.http.port}/readyz`);
  const body = (await res.json()) as { checks: Record<string, string> };
  return { status: res.status, checks: body.checks };
}

function create(id: string, timeoutMs?: number): Promise<{ status_code: number; data?: { message?: string } }> {
  return rpc
    .request(SHARED, { uri: '/v1/pipecatcalls', method: 'POST', data: { id, reference_type: 'call', reference_id: randomUUID() } }, timeoutMs === undefined ? {} : { timeoutMs })
    .then((r) => r.json as { status_code: number; data?: { message?: string } });
}

async function refusedCount(reason: string): Promise<number> {
  const text = await t.metrics.registry.metrics();
  const m = new RegExp(`^pipecat_manager_admission_refused_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text);
  return m === null ? 0 : Number(m[1]);
}

describe('MAX_CALLS', () => {
  it('admits two calls, refuses the third clearly, leaves the shared queue, and comes back below the cap', async () => {
    expect(await consumers()).toBe(1);
    expect((await readyz()).status).toBe(200);
    const a = randomUUID();
    const b = randomUUID();
    expect((await create(a)).status_code).toBe(200);
    expect((await create(b)).status_code).toBe(200);
    // At the cap: the shared consumer goes away, so a create now waits in the queue for another instance.
    await until(async () => (await consumers()) === 0, 'the shared consumer to be cancelled');
    const ready = await readyz();
    expect(ready.status).toBe(503);
    expect(ready.checks.admission).toMatch(/MAX_CALLS=2/);
    const waiting = create(randomUUID(), 10_000);
    await until(async () => (await ch.checkQueue(SHARED)).messageCount === 1, 'the create to wait in the shared queue');

    // One call ends: below the cap the instance rejoins the queue and takes the waiting create.
    await t.app.calls.terminate(a, 'stop');
    expect((await waiting).status_code).toBe(200);
    await until(async () => (await consumers()) === 0, 'the cap to be reached again');
    await t.app.calls.terminate(b, 'stop');
    await until(async () => (await consumers()) === 1, 'the shared consumer to come back');
    expect((await readyz()).status).toBe(200);
  });

  it('a create that reaches the instance at the cap gets a 500 naming MAX_CALLS', async () => {
    const live = [...t.app.calls.sessions()].map((c) => c.id);
    const fill = Math.max(0, 2 - live.length);
    for (let i = 0; i < fill; i++) expect((await create(randomUUID())).status_code).toBe(200);
    const before = await refusedCount('max_calls');
    // Every route also answers on the per-host queue, which stays consumed: the refusal is an answer there.
    const reply = await rpc.request(HOST, {
      uri: '/v1/pipecatcalls',
      method: 'POST',
      data: { id: randomUUID(), reference_type: 'call', reference_id: randomUUID() },
    });
    const body = reply.json as { status_code: number; data?: { message?: string } };
    expect(body.status_code).toBe(500);
    expect(body.data?.message).toMatch(/takes no new calls right now: max_calls: 2 of MAX_CALLS=2/);
    expect(await refusedCount('max_calls')).toBe(before + 1);
    for (const c of [...t.app.calls.sessions()]) await t.app.calls.terminate(c.id, 'stop');
    await until(async () => (await consumers()) === 1, 'the shared consumer to come back');
  });
});

describe('overload signal', () => {
  it('makes /readyz 503 with the reason, leaves the shared queue, refuses unknown Audiosocket UUIDs; then recovers', async () => {
    t.app.admission.forceOverload('test says the workers are saturated');
    await until(async () => (await consumers()) === 0, 'the shared consumer to be cancelled');
    const ready = await readyz();
    expect(ready.status).toBe(503);
    expect(ready.checks.admission).toMatch(/forced overload: test says the workers are saturated/);

    const before = await refusedCount('overload');
    const client = await AudiosocketClient.connect({ host: '127.0.0.1', port: t.app.addresses.audiosocket.port, uuid: randomUUID() });
    await Promise.race([client.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('not closed')), 5000))]);
    expect(client.isClosed).toBe(true);
    expect(t.app.calls.size).toBe(0);
    expect(await refusedCount('overload')).toBe(before + 1);
    expect(await t.metrics.registry.metrics()).toMatch(/^pipecat_manager_admission_admitting 0$/m);

    t.app.admission.forceOverload(null);
    await until(async () => (await consumers()) === 1, 'the shared consumer to come back');
    expect((await readyz()).status).toBe(200);
    expect(await t.metrics.registry.metrics()).toMatch(/^pipecat_manager_admission_admitting 1$/m);
    const id = randomUUID();
    expect((await create(id)).status_code).toBe(200);
    await t.app.calls.terminate(id, 'stop');
  });
});
