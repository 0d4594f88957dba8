// A call's whole life over the real transports: created by RPC, dialled over a real Audiosocket TCP connection
// with real recorded speech, paced frames measured at the client, hung up, and nothing left behind.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readWav } from '../../src/audio/wav.js';
import { AudiosocketClient } from '../../src/transports/audiosocket/client.js';
import { KIND_AUDIO_16K, KIND_AUDIO_8K, KIND_HANGUP } from '../../src/transports/audiosocket/protocol.js';
import { ReplyRecorder } from '../../src/transports/audiosocket/reply-recorder.js';
import { RpcTestClient, type EventSubscription } from '../helpers/rpc-test-client.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = 'bin-manager.pipecat-manager.request.127.0.0.1';
const PROMPT = '/usr/share/asterisk/sounds/en/hello-world.wav';

let services: TestServices;
let t: TestApp;
let rpc: RpcTestClient;
let events: EventSubscription;

beforeAll(async () => {
  services = await createTestServices();
  t = await startTestApp(services);
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  events = await rpc.subscribeEvents();
});

afterAll(async () => {
  await events?.close();
  await rpc?.close();
  await t?.stop();
  await services?.dropAll();
});

function typesFor(id: string): string[] {
  return (events.events as Array<{ type: string; data: { id?: string } }>).filter((e) => e.data.id === id).map((e) => e.type);
}

function dial(uuid: string): Promise<AudiosocketClient> {
  return AudiosocketClient.connect({ host: '127.0.0.1', port: t.app.addresses.audiosocket.port, uuid });
}

function resourceCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

describe('an Audiosocket call', () => {
  it('create → dial → paced 20 ms frames → hang up → terminated, with nothing left', async () => {
    const before = resourceCounts();
    const id = randomUUID();
    const created = await rpc.request(SHARED, {
      uri: '/v1/pipecatcalls',
      method: 'POST',
      data: { id, reference_type: 'call', reference_id: randomUUID() },
    });
    expect((created.json as { status_code: number }).status_code).toBe(200);

    const client = await dial(id);
    const recorder = new ReplyRecorder();
    const kinds = new Set<number>();
    const sizes = new Set<number>();
    client.onMessage((msg, at) => {
      kinds.add(msg.kind);
      sizes.add(msg.payload.length);
      recorder.add(msg.kind, Buffer.from(msg.payload), at);
    });
    const wav = readWav(readFileSync(PROMPT));
    expect(wav.sampleRate).toBe(8000);
    const pcm = Buffer.from(wav.samples.buffer, wav.samples.byteOffset, wav.samples.byteLength);
    await client.streamPcm(pcm, KIND_AUDIO_8K);
    await waitUntil('pipecatcall_initialized', () => typesFor(id).includes('pipecatcall_initialized'));

    const stats = recorder.stats();
    // The prompt lasts ~1.3 s: the daemon answered every 20 ms of it with one 8 kHz frame.
    expect(stats.frames).toBeGreaterThan(50);
    expect([...kinds]).toEqual([KIND_AUDIO_8K]);
    expect([...sizes]).toEqual([320]);
    const arrivals = recorder.latenesses();
    // Paced on a grid (sanity bound only: precise lateness is a bench figure, a loaded machine stalls the loop).
    expect(stats.p50LatenessMs).toBeLessThan(500);
    expect(arrivals.length).toBe(stats.frames);
    expect(t.app.inspect()).toMatchObject({ calls: 1, audiosocketConnections: 1, clockSinks: 1 });

    client.hangup();
    await waitUntil('pipecatcall_terminated', () => typesFor(id).includes('pipecatcall_terminated'));
    expect(typesFor(id)).toEqual(['pipecatcall_created', 'pipecatcall_initialized', 'pipecatcall_terminated']);
    await waitUntil('the socket to close', () => t.app.inspect().audiosocketConnections === 0);
    expect(t.app.inspect()).toEqual({ calls: 0, audiosocketConnections: 0, clockSinks: 0 });
    const after = resourceCounts();
    expect(after.Timeout ?? 0).toBeLessThanOrEqual(before.Timeout ?? 0);
    expect(after.TCPSocketWrap ?? 0).toBeLessThanOrEqual(before.TCPSocketWrap ?? 0);
    const terminated = await t.metrics.registry.getSingleMetricAsString('pipecat_manager_calls_terminated_total');
    expect(terminated).toMatch(/reason="hangup"} 1/);
  });

  it('answers 16 kHz callers (0x12) in 16 kHz frames of 640 bytes', async () => {
    const id = randomUUID();
    const client = await dial(id);
    const frames: Array<[number, number]> = [];
    client.onMessage((msg) => frames.push([msg.kind, msg.payload.length]));
    await client.streamPcm(Buffer.alloc(640 * 15), KIND_AUDIO_16K);
    await waitUntil('16 kHz frames', () => frames.some(([k]) => k === KIND_AUDIO_16K));
    // 8 kHz from the UUID on until the caller's first audio names its kind, then its kind only.
    const first16 = frames.findIndex(([k]) => k === KIND_AUDIO_16K);
    expect(first16).toBeLessThan(10);
    expect(frames.slice(0, first16).every(([k, n]) => k === KIND_AUDIO_8K && n === 320)).toBe(true);
    expect(frames.slice(first16).every(([k, n]) => k === KIND_AUDIO_16K && n === 640)).toBe(true);
    client.hangup();
    await waitUntil('terminated', () => typesFor(id).includes('pipecatcall_terminated'));
  });

  it('a stop RPC hands the call back to the dialplan with 0x00 and closes the socket', async () => {
    const id = randomUUID();
    const client = await dial(id);
    let hangupSeen = false;
    client.onMessage((msg) => {
      if (msg.kind === KIND_HANGUP) hangupSeen = true;
    });
    await client.streamPcm(Buffer.alloc(320 * 5), KIND_AUDIO_8K);
    await waitUntil('the session', () => t.app.calls.session(id) !== undefined);
    const reply = await rpc.request(HOST, { uri: `/v1/pipecatcalls/${id}/stop`, method: 'POST' });
    expect((reply.json as { status_code: number }).status_code).toBe(200);
    await client.closed;
    expect(hangupSeen).toBe(true);
    expect(t.app.calls.session(id)).toBeUndefined();
  });

  it('refuses a second connection for a call that already has media, and a terminated call', async () => {
    const id = randomUUID();
    const first = await dial(id);
    await first.streamPcm(Buffer.alloc(320 * 3), KIND_AUDIO_8K);
    await waitUntil('media', () => t.app.calls.session(id)?.media != null);
    const second = await dial(id);
    await second.closed;
    expect(first.isClosed).toBe(false);
    first.hangup();
    await waitUntil('terminated', () => typesFor(id).includes('pipecatcall_terminated'));
    const third = await dial(id);
    await third.closed;
    expect(typesFor(id).filter((x) => x === 'pipecatcall_created')).toHaveLength(1);
  });

  it('unknown UUIDs are accepted as new calls with the defaults (UNKNOWN_CALLS=accept)', async () => {
    const id = randomUUID();
    const client = await dial(id);
    await client.streamPcm(Buffer.alloc(320 * 3), KIND_AUDIO_8K);
    await waitUntil('initialized', () => typesFor(id).includes('pipecatcall_initialized'));
    const get = await rpc.request(SHARED, { uri: `/v1/pipecatcalls/${id}`, method: 'GET' });
    const row = (get.json as { data: Record<string, string> }).data;
    expect(row).toMatchObject({ reference_type: 'call', llm_type: 'local.echo', stt_type: 'sphinx', tts_type: 'espeak' });
    expect(row.reference_id).toBe('00000000-0000-0000-0000-000000000000');
    client.hangup();
    await waitUntil('terminated', () => typesFor(id).includes('pipecatcall_terminated'));
  });

  it('a connection whose first message is not the UUID is closed and counted', async () => {
    const { connect } = await import('node:net');
    const sock = connect({ host: '127.0.0.1', port: t.app.addresses.audiosocket.port });
    sock.on('error', () => undefined);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(Buffer.concat([Buffer.from([0x10, 0x01, 0x40]), Buffer.alloc(320)]));
    await new Promise<void>((r) => sock.once('close', () => r()));
    const text = await t.metrics.registry.getSingleMetricAsString('pipecat_manager_audiosocket_protocol_errors_total');
    expect(text).toMatch(/kind="no_uuid"} 1/);
  });
});
