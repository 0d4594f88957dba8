// Issue 12, item 3, on real daemon processes: a daemon killed with SIGKILL leaves a live row; the next start on
// the same host id ends it (pipecatcall_terminated published, tm_delete set). SIGHUP and SIGUSR2 are logged and
// survived; SIGUSR1 opens no inspector port; SIGTERM still stops the daemon cleanly.

import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnDaemon, type DaemonProcess } from '../helpers/processes.js';
import { RpcTestClient, goRequestBody, type EventSubscription } from '../helpers/rpc-test-client.js';
import { createTestServices, type TestServices } from '../helpers/test-app.js';
import { daemonEnv } from './support/daemon-env.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = 'bin-manager.pipecat-manager.request.127.0.0.1';

let services: TestServices;
let rpc: RpcTestClient;
let events: EventSubscription;
const daemons: DaemonProcess[] = [];

beforeAll(async () => {
  services = await createTestServices();
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  // Declared as the daemon declares it (SPEC §4.2), so the subscription exists before the first daemon starts.
  await rpc.withChannel((ch) => ch.assertExchange('bin-manager.pipecat-manager.event', 'fanout', { durable: true }));
  events = await rpc.subscribeEvents();
});

afterAll(async () => {
  for (const d of daemons) d.kill('SIGKILL');
  await events?.close();
  await rpc?.close();
  await services?.dropAll();
});

async function start(): Promise<DaemonProcess> {
  const d = await spawnDaemon(daemonEnv(services, { UNKNOWN_CALLS: 'accept', DEFAULT_STT_TYPE: '', DEFAULT_TTS_TYPE: '' }), 60_000);
  daemons.push(d);
  return d;
}

type Reply = { status_code: number; data?: Record<string, unknown> };

async function call(queue: string, uri: string, method: string, data?: unknown): Promise<Reply> {
  return (await rpc.request(queue, goRequestBody({ uri, method, ...(data === undefined ? {} : { data }) }), { timeoutMs: 10_000 })).json as Reply;
}

/** TCP ports the process listens on, from ss. */
function listeningPorts(pid: number): string[] {
  const out = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.includes(`pid=${pid},`))
    .map((l) => l.trim().split(/\s+/)[3] ?? '')
    .sort();
}

type Event = { type: string; data: { id: string; tm_delete: string } };

describe('process signals and restarts', () => {
  it('ends the rows a killed daemon left live when the next one starts on the same host id', async () => {
    const first = await start();
    const ids = [randomUUID(), randomUUID()];
    for (const id of ids) expect((await call(SHARED, '/v1/pipecatcalls', 'POST', { id, reference_type: 'call' })).status_code).toBe(200);
    for (const id of ids) expect((await call(SHARED, `/v1/pipecatcalls/${id}`, 'GET')).data?.['tm_delete']).toBe('9999-01-01 00:00:00.000000');
    first.kill('SIGKILL');
    await first.exited;

    const second = await start();
    await waitUntil('pipecatcall_terminated for both ghosts', () =>
      ids.every((id) => (events.events as Event[]).some((e) => e.type === 'pipecatcall_terminated' && e.data.id === id)),
    );
    for (const id of ids) {
      const row = await call(SHARED, `/v1/pipecatcalls/${id}`, 'GET');
      expect(row.data?.['tm_delete']).not.toBe('9999-01-01 00:00:00.000000');
    }
    expect(second.logs.some((l) => l['reason'] === 'restart' && l['calls'] === ids.length)).toBe(true);
    // Nothing of this host is listed as live any more.
    expect((await call(SHARED, '/v1/pipecatcalls?host_id=127.0.0.1', 'GET')).data?.['result']).toEqual([]);
  });

  it('logs SIGHUP and SIGUSR2 and carries on; SIGUSR1 opens no inspector; SIGTERM still stops it with 0', async () => {
    const d = daemons.at(-1) as DaemonProcess;
    const pid = d.child.pid as number;
    const before = listeningPorts(pid);
    expect(before.length).toBeGreaterThan(0);
    for (const signal of ['SIGHUP', 'SIGUSR2', 'SIGUSR1'] as const) {
      d.kill(signal);
      await waitUntil(`the ${signal} log line`, () => d.logs.some((l) => l['signal'] === signal));
      expect((await call(HOST, '/v1/ping', 'GET')).status_code, `alive after ${signal}`).toBe(200);
    }
    await sleep(500); // the inspector, if it opened, would be listening by now
    expect(listeningPorts(pid)).toEqual(before);
    expect(d.child.exitCode).toBeNull();
    d.kill('SIGTERM');
    expect(await d.exited).toBe(0);
  });
});
