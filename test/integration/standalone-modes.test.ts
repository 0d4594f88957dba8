// Each part switches to its real service on its own when its address is configured (the rest stays embedded):
// MySQL alone, Redis alone in front of SQLite, RabbitMQ alone with SQLite. Also: RPC over HTTP answers the very
// bytes RPC over the broker answers.

import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { RpcTestClient } from '../helpers/rpc-test-client.js';
import { TEST_MYSQL, testLogger, testRedisConfig } from '../helpers/services.js';
import { createTestServices, type TestServices } from '../helpers/test-app.js';

const SHARED = 'bin-manager.pipecat-manager.request';
let services: TestServices;

beforeAll(async () => {
  services = await createTestServices();
});
afterAll(async () => {
  await services?.dropAll();
});

async function startWith(env: Record<string, string>): Promise<{ app: App; base: string; dir: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'modes-'));
  const config = loadConfig({
    env: {
      AUDIOSOCKET_LISTEN_ADDRESS: '127.0.0.1:0',
      HTTP_LISTEN_ADDRESS: '127.0.0.1:0',
      PROMETHEUS_LISTEN_ADDRESS: '127.0.0.1:0',
      DATABASE_PATH: join(dir, 'calls.sqlite'),
      LOG_LEVEL: 'silent',
      ...env,
    },
  });
  const app = await App.start(config, testLogger(), { metrics: new Metrics({ defaultMetrics: false }) });
  return { app, dir, base: `http://127.0.0.1:${app.addresses.http.port}`, [Symbol.asyncDispose]: () => app.close() };
}

async function readyz(base: string): Promise<{ checks: Record<string, string>; modes: Record<string, string> }> {
  const res = await fetch(`${base}/readyz`);
  expect(res.status).toBe(200);
  return (await res.json()) as { checks: Record<string, string>; modes: Record<string, string> };
}

async function createOverHttp(base: string, id: string): Promise<string> {
  const res = await fetch(`${base}/v1/pipecatcalls`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id, reference_type: 'call', llm_type: 'local.echo' }),
  });
  expect(res.status).toBe(200);
  return res.text();
}

describe('switching each part to its real service', () => {
  it('DATABASE_DSN alone: calls in MariaDB, no cache, no broker', async () => {
    const db = services.database.config;
    await using t = await startWith({ DATABASE_DSN: `mysql://${db.user}@${db.host}:${db.port}/${db.database}` });
    expect(await readyz(t.base)).toMatchObject({
      checks: { mysql: 'ok', admission: 'ok' },
      modes: { database: `mysql ${db.host}:${db.port}/${db.database}`, cache: 'none', rpc: 'http', events: 'none' },
    });
    expect(Object.keys((await readyz(t.base)).checks)).toEqual(['mysql', 'admission']);
    const id = randomUUID();
    await createOverHttp(t.base, id);
    const conn = await createConnection({ ...TEST_MYSQL, database: db.database });
    try {
      const [rows] = await conn.query<RowDataPacket[]>("SELECT host_id FROM pipecat_pipecatcalls WHERE id = UNHEX(REPLACE(?, '-', ''))", [id]);
      expect(rows).toEqual([{ host_id: '127.0.0.1' }]);
    } finally {
      await conn.end();
    }
  });

  it('REDIS_ADDRESS alone: SQLite with the Redis cache in front', async () => {
    const r = testRedisConfig();
    await using t = await startWith({ REDIS_ADDRESS: `${r.host}:${r.port}`, REDIS_DATABASE: String(r.database) });
    const status = await readyz(t.base);
    expect(status.checks).toEqual({ sqlite: 'ok', redis: 'ok', admission: 'ok' });
    expect(status.modes).toMatchObject({ database: `sqlite ${join(t.dir, 'calls.sqlite')}`, cache: `redis ${r.host}:${r.port}/${r.database}` });
    const id = randomUUID();
    const body = await createOverHttp(t.base, id);
    const redis = new Redis({ host: r.host, port: r.port, db: r.database });
    try {
      expect(await redis.get(`pipecatcall:${id}`)).toBe(body);
      await redis.del(`pipecatcall:${id}`);
    } finally {
      redis.disconnect();
    }
  });

  it('RABBITMQ_ADDRESS alone: RPC and events on the broker over SQLite; HTTP answers the same bytes', async () => {
    await using t = await startWith({ RABBITMQ_ADDRESS: services.rabbitUrl });
    const status = await readyz(t.base);
    expect(status.checks).toEqual({ sqlite: 'ok', rabbitmq: 'ok', admission: 'ok' });
    expect(status.modes).toMatchObject({ cache: 'none', rpc: 'rabbitmq + http', events: 'rabbitmq' });
    const rpc = await RpcTestClient.connect(services.rabbitUrl);
    const events = await rpc.subscribeEvents();
    try {
      const id = randomUUID();
      const reply = await rpc.request(SHARED, { uri: '/v1/pipecatcalls', method: 'POST', data: { id, reference_type: 'call' } });
      expect(reply.json).toMatchObject({ status_code: 200, data: { id } });
      await events.waitFor(1);
      expect(events.events[0]).toMatchObject({ type: 'pipecatcall_created', data: { id } });

      const overRpc = await rpc.request(SHARED, { uri: `/v1/pipecatcalls/${id}`, method: 'GET' });
      const overHttp = await (await fetch(`${t.base}/v1/pipecatcalls/${id}`)).text();
      expect(JSON.stringify((overRpc.json as { data: unknown }).data)).toBe(overHttp);
      const missingRpc = await rpc.request(SHARED, { uri: `/v1/pipecatcalls/${randomUUID()}`, method: 'GET' });
      const missingHttp = await fetch(`${t.base}/v1/pipecatcalls/${randomUUID()}`);
      expect((missingRpc.json as { status_code: number }).status_code).toBe(missingHttp.status);
    } finally {
      await events.close();
      await rpc.close();
    }
  });
});
