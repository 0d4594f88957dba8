// The pacing thread over real TCP: it writes a slot's idle frame from its first slot, the staged frames in order and
// each exactly once (written or taken back, never both), nothing after a release, and a call whose socket is closed
// by any path (our hangup, the peer's reset) is released before its descriptor closes. If the thread goes away, the
// call's frames go on from the main thread's clock.

import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { OutputClock } from '../../src/audio/clock.js';
import { Pacer, type PacerSlot, type SlotReporter } from '../../src/audio/pacer/pacer.js';
import { AudiosocketClient } from '../../src/transports/audiosocket/client.js';
import type { AudiosocketConnection } from '../../src/transports/audiosocket/connection.js';
import { AudiosocketMedia, silenceFrame } from '../../src/transports/audiosocket/media.js';
import {
  AudiosocketDecoder,
  KIND_AUDIO_8K,
  KIND_HANGUP,
  encodeMessage,
  type AudiosocketMessage,
} from '../../src/transports/audiosocket/protocol.js';
import { AudiosocketServer } from '../../src/transports/audiosocket/server.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { newUuid } from '../../src/model/uuid.js';
import { waitUntil } from '../helpers/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const quietReporter = (): SlotReporter & { counts: { written: number; dropped: number; underran: number } } => {
  const counts = { written: 0, dropped: 0, underran: 0 };
  return {
    counts,
    written: (n) => void (counts.written += n),
    dropped: (n) => void (counts.dropped += n),
    underran: (n) => void (counts.underran += n),
  };
};

/** A bot frame whose samples all carry `marker`, so the client can tell frames apart. */
function botFrame(marker: number): Buffer {
  const pcm = Buffer.alloc(320);
  for (let i = 0; i < 160; i++) pcm.writeInt16LE(marker, i * 2);
  return encodeMessage(KIND_AUDIO_8K, pcm);
}
const markerOf = (m: AudiosocketMessage): number => (m.payload.length >= 2 ? m.payload.readInt16LE(0) : -1);

interface Pair {
  /** The daemon side: the pacing thread writes to its descriptor. */
  server: Socket;
  /** What the peer received, decoded. */
  received: AudiosocketMessage[];
  peer: Socket;
}

/**
 * A connected pair: TCP on 127.0.0.1, or a Unix stream socket (`unix`), whose buffers are far smaller than
 * loopback TCP's (about 200 KB against several MB), so a peer that does not read blocks the writer in seconds.
 */
async function socketPair(unix = false): Promise<Pair> {
  const listener: Server = createServer();
  const path = join(tmpdir(), `pacer-${process.pid}-${Math.random().toString(36).slice(2)}.sock`);
  await new Promise<void>((r) => (unix ? listener.listen(path, r) : listener.listen(0, '127.0.0.1', r)));
  const accepted = new Promise<Socket>((r) => listener.once('connection', r));
  const peer = unix ? connect(path) : connect((listener.address() as { port: number }).port, '127.0.0.1');
  const server = await accepted;
  listener.close();
  const received: AudiosocketMessage[] = [];
  const decoder = new AudiosocketDecoder((m) => received.push({ kind: m.kind, payload: Buffer.from(m.payload) }), { maxFrameBytes: 65_535 });
  peer.on('data', (chunk: Buffer) => decoder.push(chunk));
  cleanups.push(() => {
    peer.destroy();
    server.destroy();
  });
  return { server, received, peer };
}

function fdOf(socket: Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

async function startPacer(leadMs = 60): Promise<Pacer> {
  const pacer = new Pacer({ leadMs });
  cleanups.push(() => pacer.close());
  expect(await pacer.ready).toBe(true);
  return pacer;
}

describe('Pacer', () => {
  it('writes the idle frame from its first slot, one per 20 ms', async () => {
    const pacer = await startPacer();
    const pair = await socketPair();
    const idle = silenceFrame(KIND_AUDIO_8K);
    const slot = pacer.open(fdOf(pair.server), quietReporter(), idle) as PacerSlot;
    expect(slot).not.toBeNull();
    await waitUntil('the first idle frame', () => pair.received.length > 0, 2000);
    await sleep(400);
    const n = pair.received.length;
    // 400 ms more is 20 slots; the bound only guards against a thread that writes in bursts or not at all.
    expect(n).toBeGreaterThanOrEqual(8);
    expect(n).toBeLessThanOrEqual(40);
    for (const m of pair.received) expect(Buffer.compare(encodeMessage(m.kind, m.payload), idle)).toBe(0);
    slot.release();
  });

  it('hands every turn\'s lateness to the main thread, once', async () => {
    const samples: number[] = [];
    const pacer = new Pacer({ leadMs: 60, onLateness: (ms) => samples.push(ms) });
    cleanups.push(() => pacer.close());
    expect(await pacer.ready).toBe(true);
    const pair = await socketPair();
    const slot = pacer.open(fdOf(pair.server), quietReporter(), silenceFrame(KIND_AUDIO_8K)) as PacerSlot;
    await waitUntil('idle frames', () => pair.received.length > 5, 2000);
    pacer.drainLateness();
    const first = samples.length;
    expect(first).toBeGreaterThan(0);
    // Released, the thread records no more turns once it has dropped the slot.
    slot.release();
    await waitUntil('the thread to drop the slot', () => pacer.stats.slots === 0, 2000);
    pacer.drainLateness();
    pacer.drainLateness();
    // One sample per turn of a phase with calls, each handed over once.
    expect(samples.length).toBe(pacer.stats.ticks);
    expect(samples.length).toBeGreaterThanOrEqual(first);
    expect(samples.every((ms) => Number.isFinite(ms) && ms > -1)).toBe(true);
  });

  it('writes staged frames in order, each once, and idle frames only around them', async () => {
    const pacer = await startPacer(60);
    const pair = await socketPair();
    const reporter = quietReporter();
    const slot = pacer.open(fdOf(pair.server), reporter, silenceFrame(KIND_AUDIO_8K)) as PacerSlot;
    await waitUntil('idle frames', () => pair.received.length > 2, 2000);
    const total = 40;
    let next = 1;
    // Keep the ring topped up the way a paced output does on its ticks.
    while (next <= total) {
      while (next <= total && slot.room() > 0) slot.put(botFrame(next++));
      await sleep(10);
    }
    await waitUntil('the last staged frame', () => pair.received.some((m) => markerOf(m) === total), 3000);
    await sleep(60);
    const markers = pair.received.map(markerOf);
    const first = markers.indexOf(1);
    const bot = markers.filter((v) => v > 0);
    expect(bot).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    // Contiguous: the thread never found the ring empty in the middle of the run.
    expect(markers.slice(first, first + total)).toEqual(bot);
    slot.sync();
    expect(reporter.counts.written).toBeGreaterThanOrEqual(total);
    expect(reporter.counts.dropped).toBe(0);
    slot.release();
  });

  it('takes back what is not yet written: every frame arrives or comes back, exactly once', async () => {
    const pacer = await startPacer(160);
    const pair = await socketPair();
    const slot = pacer.open(fdOf(pair.server), quietReporter(), silenceFrame(KIND_AUDIO_8K)) as PacerSlot;
    await waitUntil('idle frames', () => pair.received.length > 0, 2000);
    for (let i = 1; i <= 8; i++) slot.put(botFrame(i));
    await sleep(45);
    const back = slot.retract().map((f) => f.readInt16LE(3));
    expect(slot.pending()).toBe(0);
    await sleep(100);
    const sent = pair.received.map(markerOf).filter((v) => v > 0);
    expect(sent.length).toBeGreaterThan(0);
    expect(back.length).toBeGreaterThan(0);
    expect([...sent, ...back]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    slot.release();
  });

  it('writes nothing after release, so the socket is ours for the hangup', async () => {
    const pacer = await startPacer();
    const pair = await socketPair();
    const slot = pacer.open(fdOf(pair.server), quietReporter(), silenceFrame(KIND_AUDIO_8K)) as PacerSlot;
    await waitUntil('idle frames', () => pair.received.length > 3, 2000);
    expect(slot.release()).toBeNull();
    pair.server.write(encodeMessage(KIND_HANGUP));
    await waitUntil('the hangup', () => pair.received.some((m) => m.kind === KIND_HANGUP), 2000);
    await sleep(100);
    expect(pair.received.at(-1)?.kind).toBe(KIND_HANGUP);
    await waitUntil('the thread to drop the slot', () => pacer.stats.slots === 0, 2000);
  });

  it('counts a peer that does not read as blocked slots and dropped frames, never splitting a frame', async () => {
    const pacer = await startPacer();
    const pair = await socketPair(true);
    pair.peer.pause();
    const reporter = quietReporter();
    let blocked = 0;
    reporter.dropped = (n, slots) => {
      reporter.counts.dropped += n;
      blocked = Math.max(blocked, slots);
    };
    // The largest frame a slot takes (20 ms at 48 kHz), so the socket's buffers fill in seconds, not minutes.
    const big = encodeMessage(0x16, Buffer.alloc(1920, 7));
    const slot = pacer.open(fdOf(pair.server), reporter, big) as PacerSlot;
    await waitUntil('the socket to fill and the thread to drop', () => {
      slot.sync();
      return reporter.counts.dropped > 3;
    }, 30_000);
    expect(blocked).toBeGreaterThan(3);
    const tail = slot.release();
    // Whatever the kernel took is whole frames plus, at most, a tail the release hands back.
    pair.received.length = 0;
    if (tail !== null) pair.server.write(tail);
    pair.server.end();
    pair.peer.resume();
    await new Promise((r) => pair.peer.once('end', r));
    for (const m of pair.received) expect(m.payload.length).toBe(1920);
    expect(pair.received.length).toBeGreaterThan(0);
  });
});

describe('Audiosocket media on the pacer', () => {
  async function serve(pacer: Pacer): Promise<{ port: number; medias: AudiosocketMedia[]; conns: AudiosocketConnection[]; clock: OutputClock }> {
    const metrics = new Metrics({ defaultMetrics: false });
    const log = createLogger('silent');
    const clock = new OutputClock({ metrics, log });
    const medias: AudiosocketMedia[] = [];
    const conns: AudiosocketConnection[] = [];
    const server = new AudiosocketServer({
      host: '127.0.0.1',
      port: 0,
      handshakeTimeoutMs: 5000,
      maxFrameBytes: 16384,
      metrics,
      log,
      onCall: (_uuid, conn) => {
        conns.push(conn);
        const media = new AudiosocketMedia(conn, clock, metrics, pacer);
        conn.onClose(() => media.close(false));
        medias.push(media);
      },
    });
    const { port } = await server.listen();
    cleanups.push(async () => {
      await server.close();
      clock.close();
    });
    return { port, medias, conns, clock };
  }

  it('a peer that resets the connection: the slot is released before the descriptor closes', async () => {
    const pacer = await startPacer();
    const s = await serve(pacer);
    const client = await AudiosocketClient.connect({ host: '127.0.0.1', port: s.port, uuid: newUuid() });
    await waitUntil('the pacer to serve the call', () => pacer.stats.slots === 1, 3000);
    expect(s.medias[0]?.paced).toBe(true);
    client.destroy(); // no hangup: the daemon sees EOF or a reset
    await waitUntil('the connection to close', () => s.conns[0]?.closed === true, 3000);
    // Released at the close itself, not later by a tick of the call.
    expect(s.medias[0]?.paced).toBe(false);
    await waitUntil('the thread to drop the slot', () => pacer.stats.slots === 0, 2000);
  });

  it('a hangup of ours arrives after the last frame, whole', async () => {
    const pacer = await startPacer();
    const s = await serve(pacer);
    const client = await AudiosocketClient.connect({ host: '127.0.0.1', port: s.port, uuid: newUuid() });
    const kinds: number[] = [];
    client.onMessage((m) => kinds.push(m.kind));
    await waitUntil('frames', () => kinds.length > 5, 3000);
    const media = s.medias[0] as AudiosocketMedia;
    media.sink.push(Buffer.alloc(320 * 10, 1));
    media.close(true);
    await client.closed;
    expect(kinds.at(-1)).toBe(KIND_HANGUP);
    expect(kinds.slice(0, -1).every((k) => k === KIND_AUDIO_8K)).toBe(true);
  });

  it('when the pacing thread stops, the call is paced from the main thread and loses no queued audio', async () => {
    const pacer = await startPacer(60);
    const s = await serve(pacer);
    const client = await AudiosocketClient.connect({ host: '127.0.0.1', port: s.port, uuid: newUuid() });
    const markers: number[] = [];
    client.onMessage((m) => markers.push(m.payload.length >= 2 ? m.payload.readInt16LE(0) : -1));
    await waitUntil('frames', () => markers.length > 3, 3000);
    const media = s.medias[0] as AudiosocketMedia;
    const pcm = Buffer.concat(Array.from({ length: 30 }, (_, i) => botFrame(i + 1).subarray(3)));
    media.sink.push(pcm);
    await pacer.close();
    await waitUntil('all 30 bot frames', () => markers.includes(30), 3000);
    expect(media.paced).toBe(false);
    expect(markers.filter((v) => v > 0)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const before = markers.length;
    await sleep(200);
    // Still on the 20 ms clock after the thread is gone (silence, about ten frames).
    expect(markers.length - before).toBeGreaterThanOrEqual(5);
    client.destroy();
  });
});
