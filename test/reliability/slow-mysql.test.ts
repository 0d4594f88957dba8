// Issue 12, item 4: MySQL slow, not down. A real `LOCK TABLES … WRITE` is held on the pipecatcalls table while
// RPC requests arrive: creates are answered 500 naming MySQL while the lock is still held (the query deadline),
// and none of them is created afterwards; pings, messages and the stop of a live call, which need no database,
// are answered at once although 40 creates are waiting; the live call's frames keep coming; the call's end is
// written once the lock is released.

import { randomUUID } from 'node:crypto';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCaller } from '../helpers/caller.js';
import { RpcTestClient, goRequestBody } from '../helpers/rpc-test-client.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';
import { RpcFlood, envelope } from './support/rpc-flood.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = 'bin-manager.pipecat-manager.request.127.0.0.1';
const LOCK_MS = 10_000;
const NEVER = '9999-01-01 00:00:00.000000';

let services: TestServices;
let t: TestApp;
let rpc: RpcTestClient;
let locker: Connection | undefined;

beforeAll(async () => {
  services = await createTestServices();
  t = await startTestApp(services, { UNKNOWN_CALLS: 'accept', DEFAULT_STT_TYPE: '', DEFAULT_TTS_TYPE: '', DATABASE_QUERY_TIMEOUT_MS: '2000' });
  rpc = await RpcTestClient.connect(services.rabbitUrl);
});

afterAll(async () => {
  await locker?.query('UNLOCK TABLES').catch(() => undefined);
  await locker?.end().catch(() => undefined);
  await rpc?.close();
  await t?.stop();
  await services?.dropAll();
});

type Reply = { status_code: number; data?: { message?: string; tm_delete?: string } };
type Timed = Reply & { at: number };

async function timed(queue: string, uri: string, method: string, data?: unknown): Promise<Timed> {
  const r = await rpc.request(queue, goRequestBody({ uri, method, ...(data === undefined ? {} : { data }) }), { timeoutMs: 30_000 });
  return { ...(r.json as Reply), at: performance.now() };
}

describe('a slow MySQL', () => {
  it('fails DB-bound requests in time, answers the others at once, and writes the end behind', async () => {
    const live = randomUUID();
    const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, live, 8000);
    await caller.until(() => t.app.calls.session(live)?.sessionStarted === true, 'the live call');

    const db = services.database.config;
    locker = await createConnection({ host: db.host, port: db.port, user: db.user, password: db.password, database: db.database });
    await locker.query('LOCK TABLES pipecat_pipecatcalls WRITE');
    const locked = performance.now();
    const framesAtLock = caller.frames.length;

    const createIds = Array.from({ length: 40 }, () => randomUUID());
    // DB-bound requests on both queues: creates on the shared one, stops of calls unknown here (a row lookup) on
    // the per-host one, where the ping and the message arrive too.
    const creates = [
      ...createIds.map((id) => timed(SHARED, '/v1/pipecatcalls', 'POST', { id, reference_type: 'call' })),
      ...Array.from({ length: 40 }, () => timed(HOST, `/v1/pipecatcalls/${randomUUID()}/stop`, 'POST')),
    ];
    await sleep(200); // the DB-bound requests are in flight (and hold their slots) before the rest arrive
    const [ping, message] = await Promise.all([
      timed(HOST, '/v1/ping', 'GET'),
      timed(HOST, '/v1/messages', 'POST', { pipecatcall_id: live, message_id: randomUUID(), message_text: 'still there?' }),
    ]);
    const stop = await timed(HOST, `/v1/pipecatcalls/${live}/stop`, 'POST');
    const getEnded = await timed(SHARED, `/v1/pipecatcalls/${live}`, 'GET');
    const replies = await Promise.all(creates);
    const firstCreate = Math.min(...replies.map((r) => r.at));
    const lastCreate = Math.max(...replies.map((r) => r.at));
    const stillLocked = performance.now() - locked < LOCK_MS;
    const framesDuringLock = caller.frames.length - framesAtLock;

    await sleep(Math.max(0, LOCK_MS - (performance.now() - locked)));
    await locker.query('UNLOCK TABLES');

    // Figures for the report, not assertions (timing is the bench's business).
    console.info(
      `slow MySQL: ping ${Math.round(ping.at - locked)} ms, message ${Math.round(message.at - locked)} ms, ` +
        `stop ${Math.round(stop.at - locked)} ms, creates ${Math.round(firstCreate - locked)}–${Math.round(lastCreate - locked)} ms after the lock; ` +
        `${framesDuringLock} frames to the caller meanwhile`,
    );
    expect(ping.status_code).toBe(200);
    expect(message.status_code).toBe(200);
    expect(stop.status_code).toBe(200);
    expect(stop.data?.tm_delete).not.toBe(NEVER);
    // The ended call is not shown live while its end waits for MySQL.
    expect(getEnded.status_code).toBe(200);
    expect(getEnded.data?.tm_delete).toBe(stop.data?.tm_delete);
    for (const r of replies) {
      expect(r.status_code).toBe(500);
      expect(r.data?.message).toMatch(/MySQL/);
    }
    // Every create was answered while the table was still locked: none waited for the lock to go.
    expect(stillLocked).toBe(true);
    expect(lastCreate - locked).toBeLessThan(LOCK_MS);
    // Not queued behind the creates: answered while every create was still waiting for its deadline.
    expect(ping.at).toBeLessThan(firstCreate);
    expect(message.at).toBeLessThan(firstCreate);
    expect(framesDuringLock).toBeGreaterThan(0);

    // After the lock: the end is written, and no create that was answered 500 appears later.
    await waitUntil('the end of the stopped call in MySQL', async () => {
      const [rows] = await locker!.query<RowDataPacket[]>('SELECT tm_delete FROM pipecat_pipecatcalls WHERE id = UNHEX(REPLACE(?, "-", ""))', [live]);
      return rows[0] !== undefined && String(rows[0]['tm_delete']) !== NEVER && !String(rows[0]['tm_delete']).startsWith('9999');
    }, 15_000, 100);
    await sleep(1_000);
    const [created] = await locker.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM pipecat_pipecatcalls WHERE id IN (${createIds.map(() => 'UNHEX(REPLACE(?, "-", ""))').join(',')})`,
      createIds,
    );
    expect(Number(created[0]?.['n'])).toBe(0);
    await caller.hangup();
  }, 90_000);

  it('sheds DB-bound requests once MySQL is known to be slow; a ping still gets through within a deadline', async () => {
    // The slow mark left by the previous test (queries that waited for its lock) lasts two deadlines.
    await sleep(4_500);
    const db = services.database.config;
    const lock = await createConnection({ host: db.host, port: db.port, user: db.user, password: db.password, database: db.database });
    try {
      await lock.query('LOCK TABLES pipecat_pipecatcalls WRITE');
      const locked = performance.now();
      // More DB-bound requests on the per-host queue than its 256 delivery slots (stops of calls unknown here, each
      // a row lookup). The first 256 hold the slots until their deadline; after that MySQL is known to be slow and
      // the rest are answered at once instead of holding the slots for another deadline.
      const flood = await RpcFlood.connect(services.rabbitUrl);
      const creates = flood.send(
        Array.from({ length: 400 }, () => ({ queue: HOST, body: envelope(`/v1/pipecatcalls/${randomUUID()}/stop`, 'POST') })),
        'stops',
        30_000,
      );
      await sleep(200);
      const ping = await timed(HOST, '/v1/ping', 'GET');
      const replies = (await creates).map((list) => (list?.[0]?.json ?? {}) as Reply);
      await flood.close();
      const answeredUnderLock = performance.now() - locked < LOCK_MS;
      await sleep(Math.max(0, LOCK_MS - (performance.now() - locked)));
      await lock.query('UNLOCK TABLES');
      const shed = replies.filter((r) => /MySQL is slow/.test(r.data?.message ?? '')).length;
      console.info(`400 DB-bound stops under the lock: ping after ${Math.round(ping.at - locked)} ms, ${shed} shed at once`);
      expect(ping.status_code).toBe(200);
      expect(replies.every((r) => r.status_code === 500 && /MySQL/.test(r.data?.message ?? ''))).toBe(true);
      expect(shed).toBeGreaterThan(0);
      expect(answeredUnderLock).toBe(true);
      // Once MySQL is fast again nothing is shed.
      const after = await timed(SHARED, '/v1/pipecatcalls', 'POST', { id: randomUUID(), reference_type: 'call' });
      expect(after.status_code).toBe(200);
    } finally {
      await lock.query('UNLOCK TABLES').catch(() => undefined);
      await lock.end().catch(() => undefined);
    }
  }, 90_000);
});
