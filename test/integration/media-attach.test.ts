// Attaching Audiosocket media to a call: atomic per call id (issue 12 item 2: two connections racing with the
// same new UUID — exactly one attaches, the other is closed and counted), and AUDIOSOCKET_DTMF (turn | ignore).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { uuidToBytes } from '../../src/model/uuid.js';
import { AudiosocketClient } from '../../src/transports/audiosocket/client.js';
import { KIND_UUID, encodeMessage } from '../../src/transports/audiosocket/protocol.js';
import { RpcTestClient, type EventSubscription } from '../helpers/rpc-test-client.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';
import { waitUntil } from '../helpers/wait.js';

let services: TestServices;
let rpc: RpcTestClient;
let events: EventSubscription;
/** The race's daemon; started first, since it declares the event exchange the subscription binds to. */
let t: TestApp;

beforeAll(async () => {
  services = await createTestServices();
  // No STT/TTS: the race is about the attach, and 30 calls stay cheap.
  t = await startTestApp(services, { UNKNOWN_CALLS: 'accept', DEFAULT_STT_TYPE: '', DEFAULT_TTS_TYPE: '' });
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  events = await rpc.subscribeEvents();
});

afterAll(async () => {
  await events?.close();
  await rpc?.close();
  await t?.stop();
  await services?.dropAll();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function eventsFor(id: string): Array<{ type: string; data: Record<string, unknown> }> {
  return (events.events as Array<{ type: string; data: Record<string, unknown> }>).filter(
    (e) => e.data.id === id || e.data.pipecatcall_id === id,
  );
}

async function metricValue(t: TestApp, name: string, labels: string): Promise<number> {
  const text = await t.metrics.registry.getSingleMetricAsString(name);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

interface RawLine {
  socket: Socket;
  bytes: number;
  closed: boolean;
}

function openRaw(port: number): Promise<RawLine> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    const line: RawLine = { socket, bytes: 0, closed: false };
    socket.on('data', (b) => (line.bytes += b.length));
    socket.on('close', () => (line.closed = true));
    socket.on('error', () => undefined);
    socket.once('connect', () => resolve(line));
    socket.once('error', reject);
  });
}

describe('two connections racing with the same new UUID (UNKNOWN_CALLS=accept)', () => {
  it('exactly one attaches, the other is closed and counted, initialized once, the sessions gauge right (30 tries)', async () => {
    const port = t.app.addresses.audiosocket.port;
    const tries = 30;
    for (let i = 0; i < tries; i++) {
      const id = randomUUID();
      const [a, b] = await Promise.all([openRaw(port), openRaw(port)]);
      // The same instant: both UUID messages written in one tick.
      const hello = encodeMessage(KIND_UUID, uuidToBytes(id));
      a.socket.write(hello);
      b.socket.write(hello);
      await waitUntil('the losing connection to be closed', () => a.closed || b.closed);
      await sleep(100);
      const winner = a.closed ? b : a;
      expect(a.closed && b.closed, `try ${i}: both closed`).toBe(false);
      // The winner keeps getting paced frames.
      const before = winner.bytes;
      await sleep(100);
      expect(winner.bytes).toBeGreaterThan(before);
      expect(t.app.calls.session(id)?.transport).toBe('audiosocket');
      expect(eventsFor(id).filter((e) => e.type === 'pipecatcall_initialized')).toHaveLength(1);
      expect(await metricValue(t, 'pipecat_manager_active_sessions_by_transport', 'transport="audiosocket"')).toBe(1);
      winner.socket.destroy();
      await waitUntil('the call to end', () => t.app.calls.session(id) === undefined);
      expect(eventsFor(id).filter((e) => e.type === 'pipecatcall_created')).toHaveLength(1);
    }
    expect(await metricValue(t, 'pipecat_manager_active_sessions_by_transport', 'transport="audiosocket"')).toBe(0);
    expect(await metricValue(t, 'pipecat_manager_media_refused_total', 'transport="audiosocket",reason="conflict"')).toBe(tries);
    expect(t.app.inspect()).toEqual({ calls: 0, audiosocketConnections: 0, clockSinks: 0 });
  });
});

describe('AUDIOSOCKET_DTMF', () => {
  /** Sends `digits` over Audiosocket and returns the user messages the call published meanwhile. */
  async function dtmfTurns(t: TestApp, id: string, digits: string): Promise<string[]> {
    const client = await AudiosocketClient.connect({ host: '127.0.0.1', port: t.app.addresses.audiosocket.port, uuid: id });
    try {
      await waitUntil('the pipeline', () => t.app.calls.session(id)?.pipelineRunning === true);
      for (const d of digits) client.sendDtmf(d);
      await sleep(1500);
    } finally {
      client.hangup();
      await client.closed;
    }
    await waitUntil('the end', () => t.app.calls.session(id) === undefined);
    return eventsFor(id)
      .filter((e) => e.type === 'message_user_llm')
      .map((e) => String(e.data.text));
  }

  it('turn (the default): digits up to # are a user turn', async () => {
    expect(await dtmfTurns(t, randomUUID(), '12#')).toEqual(['DTMF: 12']);
  });

  it('ignore: digits are no turn, but still activity that keeps an idle call alive', async () => {
    const ignoring = await startTestApp(services, { AUDIOSOCKET_DTMF: 'ignore', DEFAULT_STT_TYPE: '', DEFAULT_TTS_TYPE: '', IDLE_TIMEOUT_SECONDS: '2' });
    try {
      expect(await dtmfTurns(ignoring, randomUUID(), '12#')).toEqual([]);
      // Idle after 2 s without activity: a digit every 400 ms for 3 s keeps the call, then it ends as idle.
      const id = randomUUID();
      const client = await AudiosocketClient.connect({ host: '127.0.0.1', port: ignoring.app.addresses.audiosocket.port, uuid: id });
      try {
        await waitUntil('the pipeline', () => ignoring.app.calls.session(id)?.pipelineRunning === true);
        for (let i = 0; i < 8; i++) {
          client.sendDtmf('5');
          await sleep(400);
        }
        expect(ignoring.app.calls.session(id)?.isTerminating).toBe(false);
        await waitUntil('the idle end', () => ignoring.app.calls.session(id) === undefined, 5000);
        expect(await metricValue(ignoring, 'pipecat_manager_calls_terminated_total', 'reason="idle"')).toBe(1);
      } finally {
        client.destroy();
      }
    } finally {
      await ignoring.stop();
    }
  });
});
