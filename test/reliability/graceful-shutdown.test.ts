// SPEC §1/§13 graceful shutdown of a real daemon process: on SIGTERM it stops taking new calls (it leaves the
// shared queue) while its live calls still get their stop requests on the per-host queue; the calls left when
// the grace period ends are ended with reason shutdown and handed back to the dialplan; every call gets
// pipecatcall_terminated and its row tm_delete; the process exits 0 — early when its calls end by themselves.

import { randomUUID } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCaller } from '../helpers/caller.js';
import { spawnDaemon, type DaemonProcess } from '../helpers/processes.js';
import { RpcTestClient, type EventSubscription } from '../helpers/rpc-test-client.js';
import { TEST_MYSQL } from '../helpers/services.js';
import { createTestServices, type TestServices } from '../helpers/test-app.js';
import { daemonEnv } from './support/daemon-env.js';
import { RpcFlood, envelope } from './support/rpc-flood.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = 'bin-manager.pipecat-manager.request.127.0.0.1';
const AI_MANAGER = 'bin-manager.ai-manager.request';

let services: TestServices;
let rpc: RpcTestClient;
let flood: RpcFlood;
let events: EventSubscription;
const daemons: DaemonProcess[] = [];

beforeAll(async () => {
  services = await createTestServices();
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  flood = await RpcFlood.connect(services.rabbitUrl);
  // Declared as the daemon declares it (SPEC §4.2), so the subscription exists before the first daemon does.
  await rpc.withChannel((ch) => ch.assertExchange('bin-manager.pipecat-manager.event', 'fanout', { durable: true }));
  events = await rpc.subscribeEvents();
  await rpc.respondOn(AI_MANAGER, (req) => {
    const m = /^\/v1\/aicalls\/([0-9a-f-]{36})$/.exec(String(req.uri));
    if (m === null) return Buffer.from('{"status_code":404,"data_type":""}');
    const data = { id: m[1], reference_type: 'conversation', reference_id: randomUUID(), ai_id: '' };
    return Buffer.from(JSON.stringify({ status_code: 200, data_type: 'application/json', data }));
  });
});

afterAll(async () => {
  for (const d of daemons) {
    if (d.child.exitCode === null && d.child.signalCode === null) {
      d.kill('SIGKILL');
      await d.exited;
    }
  }
  await events?.close();
  await flood?.close();
  await rpc?.close();
  await services?.dropAll();
});

async function start(graceSeconds: number): Promise<DaemonProcess> {
  const d = await spawnDaemon(
    daemonEnv(services, {
      UNKNOWN_CALLS: 'accept',
      DEFAULT_STT_TYPE: '',
      DEFAULT_TTS_TYPE: 'espeak',
      SHUTDOWN_GRACE_SECONDS: String(graceSeconds),
    }),
  );
  daemons.push(d);
  return d;
}

type Ev = { type: string; data: { id?: string; tm_delete?: string } };
const terminatedEvent = (id: string): Ev | undefined =>
  (events.events as Ev[]).find((e) => e.type === 'pipecatcall_terminated' && e.data.id === id);

async function rowsOf(ids: string[]): Promise<Map<string, string>> {
  const conn = await createConnection({ ...TEST_MYSQL, database: services.database.config.database, dateStrings: true });
  try {
    const [rows] = await conn.query('SELECT LOWER(HEX(id)) AS id, tm_delete FROM pipecat_pipecatcalls');
    const byHex = new Map((rows as Array<{ id: string; tm_delete: string }>).map((r) => [r.id, r.tm_delete]));
    return new Map(ids.map((id) => [id, byHex.get(id.replace(/-/g, '')) ?? 'missing']));
  } finally {
    await conn.end();
  }
}

const reasonLogged = (d: DaemonProcess, id: string): unknown =>
  d.logs.find((l) => l.msg === 'pipecatcall terminated' && l.pipecatcall_id === id)?.reason;

describe('SIGTERM with live calls', () => {
  it('stops intake, serves stops during the grace, ends the rest with shutdown, updates every row, exits 0', async () => {
    const GRACE = 3;
    const d = await start(GRACE);
    // Two callers on the line, one that hangs up during the grace, a created call waiting for its media, and a
    // text-only session.
    const callers = await Promise.all([0, 1, 2].map(() => TestCaller.dial(d.audiosocketPort, randomUUID(), 8000)));
    const [c1, c2, leaving] = callers as [TestCaller, TestCaller, TestCaller];
    const waiting = randomUUID();
    const textOnly = randomUUID();
    const [made] = await flood.send(
      [
        { queue: SHARED, body: envelope('/v1/pipecatcalls', 'POST', { id: waiting, reference_type: 'call' }) },
        { queue: SHARED, body: envelope('/v1/pipecatcalls', 'POST', { id: textOnly, reference_type: 'ai_call', reference_id: randomUUID(), llm_type: 'local.echo' }) },
      ],
      'setup',
    );
    expect(made?.[0]?.status).toBe(200);
    const ids = [c1.client.uuid, c2.client.uuid, leaving.client.uuid, waiting, textOnly];
    await waitUntil('every call initialized or created', () =>
      [c1, c2, leaving].every((c) => (events.events as Ev[]).some((e) => e.type === 'pipecatcall_initialized' && e.data.id === c.client.uuid)),
    );
    await c1.until(() => c1.frames.length > 10, 'paced frames');

    const t0 = Date.now();
    d.kill('SIGTERM');
    // Intake stops: the instance leaves the shared queue, and a create sent there is no longer taken.
    await waitUntil('the shared queue to lose its consumer', async () => (await rpc.withChannel((ch) => ch.checkQueue(SHARED))).consumerCount === 0, 2_000, 20);
    const [create] = await flood.send([{ queue: SHARED, body: envelope('/v1/pipecatcalls', 'POST', { id: randomUUID(), reference_type: 'call' }) }], 'late-create', 1_000);
    expect(create).toBeUndefined();
    // Live calls still get their stop on the per-host queue, and a caller may still hang up.
    const [stopped] = await flood.send([{ queue: HOST, body: envelope(`/v1/pipecatcalls/${waiting}/stop`, 'POST') }], 'grace-stop', 2_000);
    expect(stopped?.[0]?.status).toBe(200);
    await leaving.hangup();
    // The callers still on the line keep getting paced audio during the grace.
    const before = c1.frames.length;
    await new Promise((r) => setTimeout(r, 500));
    expect(c1.frames.length - before).toBeGreaterThanOrEqual(15);

    const code = await d.exited;
    const took = Date.now() - t0;
    console.log(`SIGTERM → exit ${String(code)} after ${took} ms (grace ${GRACE} s)`);
    expect(code).toBe(0);
    // Live calls were given the whole grace, then the process went down promptly.
    expect(took).toBeGreaterThanOrEqual(GRACE * 1000 - 200);
    expect(took).toBeLessThan(GRACE * 1000 + 3_000);
    // The calls that were left were handed back to the dialplan (0x00), then closed.
    for (const c of [c1, c2]) {
      await c.client.closed;
      expect(c.hangupReceived).toBe(true);
    }
    // Every call: pipecatcall_terminated with tm_delete, the row updated, the reason logged.
    await waitUntil('a terminated event per call', () => ids.every((id) => terminatedEvent(id) !== undefined), 5_000);
    const rows = await rowsOf(ids);
    for (const id of ids) {
      expect(terminatedEvent(id)?.data.tm_delete, id).not.toMatch(/^9999/);
      expect(rows.get(id), id).toMatch(/^\d{4}-\d\d-\d\d /);
      expect(rows.get(id), id).not.toMatch(/^9999/);
      expect(rows.get(id)).toBe(terminatedEvent(id)?.data.tm_delete);
    }
    expect(reasonLogged(d, waiting)).toBe('stop');
    expect(reasonLogged(d, leaving.client.uuid)).toBe('hangup');
    for (const id of [c1.client.uuid, c2.client.uuid, textOnly]) expect(reasonLogged(d, id), id).toBe('shutdown');
    for (const c of callers) await c.hangup();
    // The create nobody took is still queued for the next instance: it was not lost.
    const depth = await rpc.withChannel((ch) => ch.checkQueue(SHARED));
    expect(depth.messageCount).toBe(1);
    await rpc.withChannel((ch) => ch.purgeQueue(SHARED));
  }, 60_000);

  it('exits as soon as its last call ends, well before the grace period is over', async () => {
    const GRACE = 20;
    const d = await start(GRACE);
    const caller = await TestCaller.dial(d.audiosocketPort, randomUUID(), 8000);
    await caller.until(() => caller.frames.length > 10, 'paced frames');
    const t0 = Date.now();
    d.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    await caller.hangup();
    const code = await d.exited;
    const took = Date.now() - t0;
    console.log(`SIGTERM with one call that hangs up after 300 ms → exit ${String(code)} after ${took} ms (grace ${GRACE} s)`);
    expect(code).toBe(0);
    expect(took).toBeLessThan(3_000);
    expect(reasonLogged(d, caller.client.uuid)).toBe('hangup');
    await waitUntil('the terminated event', () => terminatedEvent(caller.client.uuid) !== undefined);
  }, 60_000);
});
