// kill -9 of a real daemon in standalone mode (SQLite, no broker) while calls are live, then a restart on the same
// file: the rows it left live are ended at once (reason restart, each with pipecatcall_terminated on the webhook),
// and nothing else is lost — ended rows keep their end, other hosts' rows are untouched, new calls work.

import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TIMESTAMP_NEVER, nowTimestamp } from '../../src/model/timestamp.js';
import { uuidFromBytes, uuidToBytes } from '../../src/model/uuid.js';
import { TestCaller } from '../helpers/caller.js';
import { runDaemonToExit, spawnDaemon, type DaemonProcess } from '../helpers/processes.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

let dir: string;
let dbPath: string;
let hook: WebhookReceiver;
const daemons: DaemonProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'standalone-restart-'));
  dbPath = join(dir, 'calls.sqlite');
  hook = await WebhookReceiver.start();
});

afterAll(async () => {
  for (const d of daemons) {
    d.kill('SIGKILL');
    await d.exited;
  }
  await hook?.close();
});

function env(): Record<string, string> {
  // No DATABASE_DSN, REDIS_ADDRESS or RABBITMQ_ADDRESS: the child's environment has only PATH and HOME besides.
  return {
    AUDIOSOCKET_LISTEN_ADDRESS: '127.0.0.1:0',
    HTTP_LISTEN_ADDRESS: '127.0.0.1:0',
    PROMETHEUS_LISTEN_ADDRESS: '127.0.0.1:0',
    DATABASE_PATH: dbPath,
    EVENTS_WEBHOOK_URL: hook.url,
    SHUTDOWN_GRACE_SECONDS: '1',
  };
}

async function start(): Promise<DaemonProcess> {
  const d = await spawnDaemon(env(), 60_000);
  daemons.push(d);
  return d;
}

async function create(d: DaemonProcess, id: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${d.httpPort}/v1/pipecatcalls`, {
    method: 'POST',
    body: JSON.stringify({ id, reference_type: 'call', llm_type: 'local.echo' }),
  });
  expect(res.status).toBe(200);
}

function rows(): Map<string, { host_id: string; tm_delete: string }> {
  const db = new Database(dbPath, { readonly: true });
  try {
    const all = db.prepare('SELECT id, host_id, tm_delete FROM pipecat_pipecatcalls').all() as Array<{ id: Buffer; host_id: string; tm_delete: string }>;
    return new Map(all.map((r) => [uuidFromBytes(r.id), { host_id: r.host_id, tm_delete: r.tm_delete }]));
  } finally {
    db.close();
  }
}

describe('standalone restart after kill -9', () => {
  it('ends the calls the killed process left live (reason restart) and loses nothing else', async () => {
    const first = await start();
    expect(first.logs.find((l) => l.msg === 'pipecat-manager started')?.modes).toMatchObject({ database: `sqlite ${dbPath}`, rpc: 'http' });
    const [a, b, ended] = [randomUUID(), randomUUID(), randomUUID()];
    for (const id of [a, b, ended]) await create(first, id);
    const stop = await fetch(`http://127.0.0.1:${first.httpPort}/v1/pipecatcalls/${ended}/stop`, { method: 'POST' });
    expect(stop.status).toBe(200);
    const endedAt = ((await stop.json()) as { tm_delete: string }).tm_delete;
    // A call with live media: an Audiosocket caller the bot is greeting when the process dies.
    const media = randomUUID();
    const caller = await TestCaller.dial(first.audiosocketPort, media, 8000);
    await caller.until(() => caller.voiced().length > 5, 'the greeting', 20_000);
    // A row of another host sharing the file (as an operator might copy one in): not this host's to end.
    const foreign = randomUUID();
    const writer = new Database(dbPath);
    writer
      .prepare('INSERT INTO pipecat_pipecatcalls (id, host_id, tm_create, tm_update, tm_delete) VALUES (?, ?, ?, ?, ?)')
      .run(uuidToBytes(foreign), '10.9.9.9', nowTimestamp(), TIMESTAMP_NEVER, TIMESTAMP_NEVER);
    writer.close();

    // A second daemon on the same file while the first runs must not "recover" the first one's live calls.
    const intruder = await runDaemonToExit([], env(), 60_000);
    expect(intruder.code).toBe(1);
    expect(intruder.stderr).toMatch(/is in use by another pipecat-manager/);
    for (const id of [a, b, media]) expect(rows().get(id)?.tm_delete, id).toBe(TIMESTAMP_NEVER);

    first.kill('SIGKILL');
    expect(await first.exited).toBeNull();
    await caller.hangup().catch(() => undefined);
    const before = rows();
    for (const id of [a, b, media, foreign]) expect(before.get(id)?.tm_delete, id).toBe(TIMESTAMP_NEVER);
    expect(before.get(ended)?.tm_delete).toBe(endedAt);

    const terminatedBefore = hook.events.filter((e) => e.type === 'pipecatcall_terminated').length;
    const second = await start();
    const after = rows();
    expect(after.size).toBe(before.size);
    for (const id of [a, b, media]) expect(after.get(id)?.tm_delete, id).not.toBe(TIMESTAMP_NEVER);
    expect(after.get(ended)?.tm_delete).toBe(endedAt);
    expect(after.get(foreign)?.tm_delete).toBe(TIMESTAMP_NEVER);
    expect(second.logs.find((l) => l.msg === 'ended the calls the last run of this host left live')).toMatchObject({
      calls: 3,
      reason: 'restart',
    });

    await hook.until(() => hook.events.filter((e) => e.type === 'pipecatcall_terminated').length >= terminatedBefore + 3, 'three terminated events');
    const terminated = hook.events.slice(0).filter((e) => e.type === 'pipecatcall_terminated').map((e) => e.data.id);
    for (const id of [a, b, media]) expect(terminated).toContain(id);
    expect(terminated.filter((id) => id === ended)).toHaveLength(1);
    expect(terminated).not.toContain(foreign);

    const metrics = await (await fetch(`http://127.0.0.1:${second.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/pipecat_manager_calls_terminated_total\{reason="restart"\} 3/);

    // And the restarted daemon takes calls as usual.
    const fresh = randomUUID();
    await create(second, fresh);
    expect(rows().get(fresh)?.tm_delete).toBe(TIMESTAMP_NEVER);
    second.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(rows().get(fresh)?.tm_delete).not.toBe(TIMESTAMP_NEVER);
  }, 120_000);
});
