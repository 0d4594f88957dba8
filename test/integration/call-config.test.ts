// Call behaviour that depends on configuration: UNKNOWN_CALLS=reject, the idle timeout, and CALL_MANAGER=on
// with a Go-style call-manager on the real RabbitMQ. Each daemon gets its own database and vhost.

import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { AudiosocketClient } from '../../src/transports/audiosocket/client.js';
import { KIND_AUDIO_8K } from '../../src/transports/audiosocket/protocol.js';
import { RpcTestClient, type EventSubscription } from '../helpers/rpc-test-client.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = 'bin-manager.pipecat-manager.request.127.0.0.1';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function daemon(env: Record<string, string>): Promise<{ t: TestApp; rpc: RpcTestClient; events: EventSubscription; services: TestServices }> {
  const services = await createTestServices();
  cleanups.push(() => services.dropAll());
  const t = await startTestApp(services, env);
  cleanups.push(() => t.stop());
  const rpc = await RpcTestClient.connect(services.rabbitUrl);
  cleanups.push(() => rpc.close());
  const events = await rpc.subscribeEvents();
  return { t, rpc, events, services };
}

function typesFor(events: EventSubscription, id: string): string[] {
  return (events.events as Array<{ type: string; data: { id?: string } }>).filter((e) => e.data.id === id).map((e) => e.type);
}

describe('UNKNOWN_CALLS=reject', () => {
  it('closes a connection with an unknown UUID and creates nothing', async () => {
    const { t, rpc, events } = await daemon({ UNKNOWN_CALLS: 'reject' });
    const id = randomUUID();
    const client = await AudiosocketClient.connect({ host: '127.0.0.1', port: t.app.addresses.audiosocket.port, uuid: id });
    client.sendAudio(Buffer.alloc(320), KIND_AUDIO_8K);
    await client.closed;
    const get = await rpc.request(SHARED, { uri: `/v1/pipecatcalls/${id}`, method: 'GET' });
    expect(get.raw.toString()).toBe('{"status_code":404,"data_type":""}');
    expect(typesFor(events, id)).toEqual([]);
    expect(t.app.inspect().calls).toBe(0);
  });
});

describe('IDLE_TIMEOUT_SECONDS', () => {
  it('ends a call with no activity with reason idle', async () => {
    const { t, rpc, events } = await daemon({ IDLE_TIMEOUT_SECONDS: '1' });
    const id = randomUUID();
    await rpc.request(SHARED, { uri: '/v1/pipecatcalls', method: 'POST', data: { id, reference_type: 'call' } });
    const started = Date.now();
    await waitUntil('idle termination', () => typesFor(events, id).includes('pipecatcall_terminated'), 4000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(800);
    const text = await t.metrics.registry.getSingleMetricAsString('pipecat_manager_calls_terminated_total');
    expect(text).toMatch(/reason="idle"} 1/);
  });
});

describe('CALL_MANAGER=on', () => {
  it('asks call-manager for external media on create and deletes it on stop', async () => {
    const { t, rpc, events } = await daemon({ CALL_MANAGER: 'on' });
    const seen: Array<Record<string, unknown>> = [];
    await rpc.respondOn('bin-manager.call-manager.request', (req) => {
      seen.push(req);
      if (req.method === 'GET') {
        return Buffer.from(JSON.stringify({ status_code: 200, data_type: 'application/json', data: { id: 'x', status: 'progressing' } }));
      }
      return Buffer.from('{"status_code":200,"data_type":"application/json","data":{}}');
    });
    const id = randomUUID();
    const callId = randomUUID();
    const reply = await rpc.request(SHARED, { uri: '/v1/pipecatcalls', method: 'POST', data: { id, reference_type: 'call', reference_id: callId } });
    expect((reply.json as { status_code: number }).status_code).toBe(200);
    expect(seen.map((r) => `${String(r.method)} ${String(r.uri)}`)).toEqual([`GET /v1/calls/${callId}`, 'POST /v1/external-medias']);
    expect(seen[1]?.publisher).toBe('pipecat-manager');
    expect(seen[1]?.data).toEqual({
      id,
      reference_type: 'call',
      reference_id: callId,
      external_host: `127.0.0.1:${t.app.addresses.audiosocket.port}`,
      encapsulation: 'audiosocket',
      transport: 'tcp',
      connection_type: 'client',
      format: 'slin',
      direction_listen: 'in',
      direction_speak: 'out',
    });
    await rpc.request(HOST, { uri: `/v1/pipecatcalls/${id}/stop`, method: 'POST' });
    expect(seen.slice(2).map((r) => `${String(r.method)} ${String(r.uri)}`)).toEqual([
      `GET /v1/calls/${callId}`,
      `DELETE /v1/external-medias/${id}`,
    ]);
    expect(typesFor(events, id)).toContain('pipecatcall_terminated');
  });

  it('a failing external-media delete does not skip the rest of the termination', async () => {
    const { rpc, events } = await daemon({ CALL_MANAGER: 'on' });
    await rpc.respondOn('bin-manager.call-manager.request', (req) => {
      if (req.method === 'GET') {
        return Buffer.from(JSON.stringify({ status_code: 200, data_type: 'application/json', data: { status: 'progressing' } }));
      }
      if (req.method === 'DELETE') return Buffer.from('{"status_code":500,"data_type":""}');
      return Buffer.from('{"status_code":200,"data_type":"application/json","data":{}}');
    });
    const id = randomUUID();
    await rpc.request(SHARED, { uri: '/v1/pipecatcalls', method: 'POST', data: { id, reference_type: 'call', reference_id: randomUUID() } });
    const stop = await rpc.request(HOST, { uri: `/v1/pipecatcalls/${id}/stop`, method: 'POST' });
    const row = (stop.json as { data: { tm_delete: string } }).data;
    expect(row.tm_delete.startsWith('9999')).toBe(false);
    expect(typesFor(events, id)).toContain('pipecatcall_terminated');
  });

  it('a call-manager that refuses the call makes the create a 500 and terminates the row', async () => {
    const { rpc, events } = await daemon({ CALL_MANAGER: 'on' });
    await rpc.respondOn('bin-manager.call-manager.request', () => Buffer.from('{"status_code":404,"data_type":""}'));
    const id = randomUUID();
    const reply = await rpc.request(SHARED, { uri: '/v1/pipecatcalls', method: 'POST', data: { id, reference_type: 'call', reference_id: randomUUID() } });
    expect((reply.json as { status_code: number }).status_code).toBe(500);
    await waitUntil('terminated', () => typesFor(events, id).includes('pipecatcall_terminated'));
    expect(typesFor(events, id)).toEqual(['pipecatcall_created', 'pipecatcall_terminated']);
  });
});
