// SPEC §13 (leaks): many whole call lifecycles, one after another and many at once, Audiosocket calls (with
// espeak and, now and then, a pocketsphinx child per call) and text-only ai_call sessions. Afterwards nothing of
// them is left: no session, no socket on the Audiosocket port, no timer or other handle beyond the baseline, no
// child process, and the heap after GC is back near its baseline. SPEC §3.8: no timer, socket, child process or
// listener of a call survives it.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AudiosocketClient } from '../../src/transports/audiosocket/client.js';
import { KIND_AUDIO_8K } from '../../src/transports/audiosocket/protocol.js';
import { RpcTestClient } from '../helpers/rpc-test-client.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';
import { metricSum } from './support/metrics-text.js';
import {
  MiB,
  activeResources,
  childProcesses,
  grownResources,
  heapAfterGc,
  heldConnectionsOnPort,
  processListeners,
} from './support/resources.js';
import { RpcFlood, envelope } from './support/rpc-flood.js';
import { byScale } from './support/scale.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = 'bin-manager.pipecat-manager.request.127.0.0.1';
const AI_MANAGER = 'bin-manager.ai-manager.request';
const SEQUENTIAL = byScale(60, 1_000);
const CONCURRENT = byScale(20, 100);
/** One Audiosocket call in this many also runs pocketsphinx (a child process per call). */
const SPHINX_EVERY = byScale(10, 50);

let services: TestServices;
let t: TestApp;
let rpc: RpcTestClient;
let flood: RpcFlood;
let lifecycles = 0;

beforeAll(async () => {
  services = await createTestServices();
  t = await startTestApp(services, { UNKNOWN_CALLS: 'reject', IDLE_TIMEOUT_SECONDS: '60' });
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  flood = await RpcFlood.connect(services.rabbitUrl);
  // A Go-style ai-manager: every aicall is a conversation (a text-only session), its AI has no key of its own.
  await rpc.respondOn(AI_MANAGER, (req) => {
    const m = /^\/v1\/aicalls\/([0-9a-f-]{36})$/.exec(String(req.uri));
    if (m === null) return Buffer.from('{"status_code":404,"data_type":""}');
    const data = { id: m[1], reference_type: 'conversation', reference_id: randomUUID(), ai_id: '' };
    return Buffer.from(JSON.stringify({ status_code: 200, data_type: 'application/json', data }));
  });
});

afterAll(async () => {
  await flood?.close();
  await rpc?.close();
  await t?.stop();
  await services?.dropAll();
});

async function call(queue: string, uri: string, method: string, data?: unknown): Promise<number> {
  const [replies] = await flood.send([{ queue, body: envelope(uri, method, data) }], `c${randomUUID()}`, 10_000);
  const status = replies?.[0]?.status;
  if (status === undefined) throw new Error(`no reply to ${method} ${uri}`);
  return status;
}

async function gone(id: string): Promise<void> {
  await waitUntil(`call ${id} to be gone`, () => t.app.calls.session(id) === undefined, 15_000, 5);
}

/** Create → Asterisk dials in and talks → the bot's pipeline runs (and speaks) → the caller hangs up. */
async function audiosocketLifecycle(i: number): Promise<void> {
  const id = randomUUID();
  const sphinx = i % SPHINX_EVERY === 0;
  const status = await call(SHARED, '/v1/pipecatcalls', 'POST', {
    id,
    reference_type: 'call',
    llm_type: 'local.echo',
    tts_type: 'espeak',
    stt_type: sphinx ? 'sphinx' : '',
    llm_messages: [{ role: 'user', content: `call ${i}` }],
  });
  expect(status).toBe(200);
  const client = await AudiosocketClient.connect({ host: '127.0.0.1', port: t.app.addresses.audiosocket.port, uuid: id });
  let frames = 0;
  client.onMessage(() => frames++);
  const frame = Buffer.alloc(320);
  const timer = setInterval(() => client.sendAudio(frame, KIND_AUDIO_8K), 20);
  try {
    client.sendAudio(frame, KIND_AUDIO_8K);
    await waitUntil('the pipeline to run', () => t.app.calls.session(id)?.pipelineRunning === true, 15_000, 5);
    // Some paced output reached the caller (the greeting is being synthesized or played meanwhile).
    await waitUntil('paced frames', () => frames >= 2, 5_000, 5);
  } finally {
    clearInterval(timer);
    client.hangup();
  }
  await client.closed;
  await gone(id);
  lifecycles++;
}

/** Create an ai_call → a text-only session starts at once → a message is answered → stop. */
async function textLifecycle(): Promise<void> {
  const id = randomUUID();
  expect(await call(SHARED, '/v1/pipecatcalls', 'POST', { id, reference_type: 'ai_call', reference_id: randomUUID(), llm_type: 'local.echo' })).toBe(200);
  await waitUntil('the session to run', () => t.app.calls.session(id)?.pipelineRunning === true, 10_000, 5);
  expect(await call(HOST, '/v1/messages', 'POST', { pipecatcall_id: id, message_text: 'hello', run_immediately: true })).toBe(200);
  expect(await call(HOST, `/v1/pipecatcalls/${id}/stop`, 'POST')).toBe(200);
  await gone(id);
  lifecycles++;
}

const lifecycle = (i: number): Promise<void> => (i % 2 === 0 ? audiosocketLifecycle(i) : textLifecycle());

interface Snapshot {
  heap: number;
  resources: Map<string, number>;
  children: string[];
  listeners: Record<string, number>;
}

async function settleAndSnapshot(): Promise<Snapshot> {
  await waitUntil('no live call', () => {
    const s = t.app.inspect();
    return s.calls === 0 && s.audiosocketConnections === 0 && s.clockSinks === 0;
  });
  await waitUntil('no child process', () => childProcesses().length === 0, 5_000).catch(() => undefined);
  flood.forget();
  return {
    heap: await heapAfterGc(),
    resources: activeResources(),
    children: childProcesses().map((c) => `${c.pid} ${c.command} ${c.state}`),
    listeners: processListeners(),
  };
}

async function expectNothingLeft(before: Snapshot, what: string): Promise<void> {
  const port = t.app.addresses.audiosocket.port;
  await waitUntil('no socket on the Audiosocket port', () => heldConnectionsOnPort(port) === 0, 5_000).catch(() => undefined);
  expect(heldConnectionsOnPort(port)).toBe(0);
  // TCP handles are counted by port above (the MySQL pool may have opened more of its connections meanwhile).
  const grown = (): string[] => grownResources(before.resources).filter((g) => !g.startsWith('TCPSocketWrap'));
  await waitUntil('handles back to the baseline', () => grown().length === 0, 5_000).catch(() => undefined);
  const after = await settleAndSnapshot();
  console.log(
    `${what}: ${lifecycles} lifecycles so far; heap after GC ${(before.heap / MiB).toFixed(1)} → ${(after.heap / MiB).toFixed(1)} MiB; ` +
      `handles ${JSON.stringify(Object.fromEntries(after.resources))}`,
  );
  expect(t.app.inspect()).toEqual({ calls: 0, audiosocketConnections: 0, clockSinks: 0 });
  expect(after.children).toEqual([]);
  expect(grown()).toEqual([]);
  expect(after.listeners).toEqual(before.listeners);
  expect(after.heap - before.heap).toBeLessThan(5 * MiB);
}

describe('call lifecycles leave nothing behind', () => {
  let baseline: Snapshot;

  it('warm-up: every kind of lifecycle, alone and at once, then the baseline', async () => {
    // Concurrency grows pools (MySQL opens up to 10 connections) once; that is not a leak.
    for (let i = 0; i < 20; i++) await lifecycle(i);
    await Promise.all(Array.from({ length: 30 }, (_, i) => lifecycle(i)));
    baseline = await settleAndSnapshot();
    expect(baseline.children).toEqual([]);
  }, 120_000);

  it(`${SEQUENTIAL} sequential lifecycles, Audiosocket and text-only alternating`, async () => {
    const started = performance.now();
    for (let i = 0; i < SEQUENTIAL; i++) await lifecycle(i);
    console.log(`${SEQUENTIAL} sequential lifecycles in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    await expectNothingLeft(baseline, 'after the sequential lifecycles');
  }, 600_000);

  it(`${CONCURRENT} concurrent lifecycles, Audiosocket and text-only`, async () => {
    const started = performance.now();
    await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => lifecycle(i)));
    console.log(`${CONCURRENT} concurrent lifecycles in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    await expectNothingLeft(baseline, 'after the concurrent lifecycles');
    const ended = await metricSum(t.metrics, 'pipecat_manager_calls_terminated_total');
    expect(ended).toBe(lifecycles);
  }, 300_000);
});
