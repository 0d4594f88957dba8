// AudiosocketServer over real TCP on 127.0.0.1 with the Asterisk-like client: paced output on the shared clock,
// rate echo, every kind of bad peer closed and counted, and nothing left behind after close().

import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { OutputClock } from '../../src/audio/clock.js';
import { OutputQueue } from '../../src/audio/output-queue.js';
import { silenceFrame } from '../../src/transports/audiosocket/media.js';
import { AudiosocketClient } from '../../src/transports/audiosocket/client.js';
import type { AudiosocketConnection, CloseReason } from '../../src/transports/audiosocket/connection.js';
import { encodeMessage, KIND_AUDIO_8K, rateOfKind, type AudiosocketMessage } from '../../src/transports/audiosocket/protocol.js';
import { ReplyRecorder, quantile } from '../../src/transports/audiosocket/reply-recorder.js';
import { AudiosocketServer } from '../../src/transports/audiosocket/server.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { newUuid, uuidToBytes } from '../../src/model/uuid.js';
import { waitUntil } from '../helpers/wait.js';

interface Harness {
  server: AudiosocketServer;
  clock: OutputClock;
  metrics: Metrics;
  port: number;
  logs: string[];
  conns: AudiosocketConnection[];
  closes: Map<string, CloseReason[]>;
  dtmf: string[];
}

type OnCall = (uuid: string, conn: AudiosocketConnection, h: Harness) => void;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The model handler: on the shared clock, one frame per tick — the echoed audio, or silence — in the wire kind. */
const pacedEcho: OnCall = (uuid, conn, h) => {
  let queue: OutputQueue | undefined;
  const unregister = h.clock.register({
    tick() {
      const pcm = queue?.shift();
      conn.writeFrame(pcm === undefined ? silenceFrame(conn.wireKind ?? KIND_AUDIO_8K) : encodeMessage(conn.wireKind ?? KIND_AUDIO_8K, pcm));
    },
  });
  conn.onAudio((pcm, kind) => {
    queue ??= new OutputQueue(rateOfKind(kind), 500);
    queue.pushPcm(pcm);
  });
  conn.onDtmf((d) => h.dtmf.push(d));
  conn.onClose((reason) => {
    unregister();
    h.closes.set(uuid, [...(h.closes.get(uuid) ?? []), reason]);
  });
};

async function start(options: { onCall?: OnCall; handshakeTimeoutMs?: number } = {}): Promise<Harness> {
  const metrics = new Metrics({ defaultMetrics: false });
  const logs: string[] = [];
  const log = createLogger('debug', { write: (line: string) => void logs.push(line) });
  const clock = new OutputClock({ metrics, log });
  const onCall = options.onCall ?? pacedEcho;
  const h: Harness = {
    clock,
    metrics,
    logs,
    port: 0,
    conns: [],
    closes: new Map(),
    dtmf: [],
    server: new AudiosocketServer({
      host: '127.0.0.1',
      port: 0,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5000,
      maxFrameBytes: 16384,
      metrics,
      log,
      onCall: (uuid, conn) => {
        h.conns.push(conn);
        onCall(uuid, conn, h);
      },
    }),
  };
  h.port = (await h.server.listen()).port;
  cleanups.push(async () => {
    await h.server.close();
    clock.close();
  });
  return h;
}

async function dial(h: Harness, uuid = newUuid()): Promise<AudiosocketClient> {
  const client = await AudiosocketClient.connect({ host: '127.0.0.1', port: h.port, uuid });
  cleanups.push(async () => {
    client.destroy();
    await client.closed;
  });
  return client;
}

/** A bare TCP peer, for bytes an Asterisk-like client would never send. */
function rawPeer(h: Harness): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: h.port, noDelay: true });
    socket.on('error', () => {});
    socket.on('data', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    cleanups.push(async () => {
      socket.destroy();
      await closed;
    });
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

async function errorCount(h: Harness, kind: string): Promise<number> {
  const m = await h.metrics.audiosocketProtocolErrorsTotal.get();
  return m.values.find((v) => v.labels.kind === kind)?.value ?? 0;
}

async function framesCount(h: Harness, direction: 'in' | 'out'): Promise<number> {
  const m = await h.metrics.audiosocketFramesTotal.get();
  return m.values.find((v) => v.labels.direction === direction)?.value ?? 0;
}

/** Sends `bytes` after the UUID and expects the server to close the call for protocol violation `kind`. */
async function expectProtocolClose(h: Harness, bytes: Buffer, kind: string): Promise<void> {
  const uuid = newUuid();
  const client = await dial(h, uuid);
  await waitUntil('the call', () => h.conns.length === 1);
  client.sendRaw(bytes);
  await client.closed;
  await waitUntil('onClose', () => h.closes.has(uuid));
  expect(h.closes.get(uuid)).toEqual(['protocol']);
  expect(await errorCount(h, kind)).toBe(1);
  const warn = h.logs.filter((l) => l.includes(`"kind":"${kind}"`));
  expect(warn).toHaveLength(1);
  expect(warn[0]).toContain('127.0.0.1:');
}

describe('AudiosocketServer', () => {
  it('sends 320-byte 0x10 frames paced at 20 ms from the shared clock', async () => {
    const h = await start();
    const uuid = newUuid();
    const client = await dial(h, uuid);
    const recorder = new ReplyRecorder();
    const arrivals: number[] = [];
    const kinds = new Set<number>();
    const sizes = new Set<number>();
    client.onMessage((msg, at) => {
      kinds.add(msg.kind);
      sizes.add(msg.payload.length);
      arrivals.push(at);
      recorder.add(msg.kind, msg.payload, at);
    });
    await waitUntil('61 frames', () => arrivals.length >= 61, 5000);
    expect(h.conns[0]?.uuid).toBe(uuid);
    expect([...kinds]).toEqual([0x10]);
    expect([...sizes]).toEqual([320]);
    const spacing = arrivals.slice(1, 61).map((t, i) => t - (arrivals[i] as number));
    const sorted = Float64Array.from(spacing).sort();
    const p50 = quantile(sorted, 0.5);
    expect(p50).toBeGreaterThanOrEqual(18);
    expect(p50).toBeLessThanOrEqual(22);
    const stats = recorder.stats();
    console.log(
      `received ${stats.frames} frames: spacing p50 ${p50.toFixed(2)} ms (min ${sorted[0]?.toFixed(2)}, max ` +
        `${sorted[sorted.length - 1]?.toFixed(2)}); grid lateness p50 ${stats.p50LatenessMs.toFixed(2)} ms, ` +
        `p99 ${stats.p99LatenessMs.toFixed(2)} ms, max ${stats.maxLatenessMs.toFixed(2)} ms, late ${stats.framesLate}`,
    );
    client.hangup();
    await waitUntil('onClose', () => h.closes.has(uuid));
    expect(await framesCount(h, 'out')).toBeGreaterThanOrEqual(61);
  });

  it('answers in the kind the caller sends (0x12, 16 kHz)', async () => {
    const h = await start();
    const client = await dial(h);
    const received: AudiosocketMessage[] = [];
    client.onMessage((msg) => received.push({ kind: msg.kind, payload: Buffer.from(msg.payload) }));
    const frame = Buffer.alloc(640);
    for (let i = 0; i < 320; i++) frame.writeInt16LE(1000 + i, i * 2);
    for (let i = 0; i < 5; i++) client.sendAudio(frame, 0x12);
    await waitUntil('the echo', () => received.some((m) => m.payload.equals(frame)));
    const first16k = received.findIndex((m) => m.kind === 0x12);
    const after = received.slice(first16k);
    expect(after.every((m) => m.kind === 0x12 && m.payload.length === 640)).toBe(true);
    expect(h.conns[0]?.wireKind).toBe(0x12);
    client.hangup();
    await client.closed;
    await waitUntil('frames in flushed', async () => (await framesCount(h, 'in')) === 5);
  });

  it('delivers DTMF digits', async () => {
    const h = await start();
    const client = await dial(h);
    await waitUntil('the call', () => h.conns.length === 1);
    for (const d of '5#A') client.sendDtmf(d);
    await waitUntil('3 digits', () => h.dtmf.length === 3);
    expect(h.dtmf).toEqual(['5', '#', 'A']);
  });

  it('treats EOF as hangup: onClose("eof") exactly once', async () => {
    const h = await start();
    const uuid = newUuid();
    const client = await dial(h, uuid);
    await waitUntil('the call', () => h.conns.length === 1);
    client.hangup();
    await client.closed;
    await waitUntil('onClose', () => h.closes.has(uuid));
    await sleep(50);
    expect(h.closes.get(uuid)).toEqual(['eof']);
    expect(h.server.connections).toBe(0);
  });

  it('closes with "hangup" on a 0x00 message', async () => {
    const h = await start();
    const uuid = newUuid();
    const client = await dial(h, uuid);
    await waitUntil('the call', () => h.conns.length === 1);
    client.sendRaw(encodeMessage(0x00));
    await client.closed;
    await waitUntil('onClose', () => h.closes.has(uuid));
    expect(h.closes.get(uuid)).toEqual(['hangup']);
  });

  it('sendHangup writes 00 00 00 and ends the socket', async () => {
    const h = await start({ onCall: (_uuid, conn) => setTimeout(() => conn.sendHangup(), 30) });
    const client = await dial(h);
    const kinds: number[] = [];
    client.onMessage((m) => kinds.push(m.kind));
    await client.closed;
    expect(kinds).toEqual([0x00]);
  });

  it('rejects a first message that is not a UUID', async () => {
    const h = await start();
    const peer = await rawPeer(h);
    peer.socket.write(encodeMessage(KIND_AUDIO_8K, Buffer.alloc(320)));
    await peer.closed;
    await waitUntil('the count', async () => (await errorCount(h, 'no_uuid')) === 1);
    expect(h.conns).toHaveLength(0);
  });

  it('rejects a huge length from its header: frame_too_large', async () => {
    const h = await start();
    // The length field tops out at 65535; the peer announces the maximum and tries to push 70,000 bytes.
    const huge = Buffer.concat([Buffer.from([0x10, 0xff, 0xff]), Buffer.alloc(70_000)]);
    await expectProtocolClose(h, huge, 'frame_too_large');
  });

  it('rejects odd-length audio', async () => {
    const h = await start();
    await expectProtocolClose(h, Buffer.from([0x10, 0x00, 0x03, 1, 2, 3]), 'odd_audio');
  });

  it('rejects an unknown kind', async () => {
    const h = await start();
    await expectProtocolClose(h, Buffer.from([0x42, 0x00, 0x00]), 'unknown_kind');
  });

  it('rejects a second UUID and a change of audio rate', async () => {
    const h = await start();
    await expectProtocolClose(h, encodeMessage(0x01, uuidToBytes(newUuid())), 'duplicate_uuid');
    const h2 = await start();
    const mixed = Buffer.concat([encodeMessage(0x10, Buffer.alloc(320)), encodeMessage(0x12, Buffer.alloc(640))]);
    await expectProtocolClose(h2, mixed, 'rate_change');
  });

  it('closes a peer that sends nothing after the handshake timeout', async () => {
    const h = await start({ handshakeTimeoutMs: 200 });
    const started = performance.now();
    const peer = await rawPeer(h);
    await peer.closed;
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(180);
    expect(elapsed).toBeLessThan(5000);
    expect(await errorCount(h, 'handshake_timeout')).toBe(1);
  });

  it('counts a connection closed before its UUID (AudioSocket() without Answer())', async () => {
    const h = await start();
    const peer = await rawPeer(h);
    peer.socket.end();
    await peer.closed;
    await waitUntil('the count', async () => (await errorCount(h, 'closed_before_uuid')) === 1);
    expect(h.server.connections).toBe(0);
  });

  it('closes a peer that never reads, with bounded memory: peer_not_reading', async () => {
    let maxBuffered = 0;
    const h = await start({
      onCall: (uuid, conn, harness) => {
        conn.onClose((reason) => harness.closes.set(uuid, [reason]));
        const frame = silenceFrame(KIND_AUDIO_8K);
        // Write far faster than real time until the connection is closed under us.
        const pump = (): void => {
          if (conn.closed) return;
          for (let i = 0; i < 50 && conn.writeFrame(frame); i++);
          maxBuffered = Math.max(maxBuffered, conn.writableLength);
          setImmediate(pump);
        };
        pump();
      },
    });
    const heapBefore = process.memoryUsage().heapUsed;
    const uuid = newUuid();
    const client = await dial(h, uuid);
    client.socket.pause();
    await waitUntil('peer_not_reading', () => h.closes.has(uuid), 20_000);
    expect(h.closes.get(uuid)).toEqual(['protocol']);
    expect(await errorCount(h, 'peer_not_reading')).toBe(1);
    expect(maxBuffered).toBeLessThanOrEqual(64 * 1024 + 323);
    const dropped = (await h.metrics.droppedFramesTotal.get()).values[0]?.value ?? 0;
    expect(dropped).toBeGreaterThan(0);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * 1024 * 1024);
    console.log(`peer_not_reading: max buffered ${maxBuffered} B, ${dropped} frames dropped before closing`);
  });

  it('leaves no sockets or timers after close()', async () => {
    const tcp = (): number =>
      process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap').length;
    const baseline = tcp();
    const h = await start({ handshakeTimeoutMs: 60_000 });
    const a = await dial(h);
    const b = await dial(h);
    const handshaking = await rawPeer(h); // never sends its UUID: its handshake timer is pending
    await waitUntil('two calls', () => h.conns.length === 2 && h.server.connections === 3);
    const timersOpen = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await h.server.close();
    await h.server.close(); // idempotent
    h.clock.close();
    await Promise.all([a.closed, b.closed, handshaking.closed]);
    expect(h.server.connections).toBe(0);
    expect([...h.closes.values()]).toEqual([['local'], ['local']]);
    expect(tcp()).toBe(baseline);
    // The clock's timer and the handshake timer are gone (other timers belong to Vitest).
    const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    expect(timersAfter).toBeLessThanOrEqual(timersOpen - 2);
  });
});
