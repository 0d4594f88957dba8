// Pipecat protobuf frames (SPEC §9 golden vectors) in both codecs — the daemon's (protobufjs + proto/frames.proto)
// and the console's hand-written one — plus RTVI parsing, the slow-client policy and the WebSocket media's output.

import { describe, expect, it } from 'vitest';
import { pathToFileURL } from 'node:url';
import { OutputClock } from '../../src/audio/clock.js';
import { WebSocketMedia } from '../../src/transports/websocket/media.js';
import { ProtocolError } from '../../src/errors.js';
import { decodeFrame, encodeFrame, type PipecatFrame } from '../../src/transports/websocket/frames.js';
import { parseClientMessage, rtviErrorResponse, rtviMessage } from '../../src/transports/websocket/rtvi.js';
import { WsPeer, type PeerSocket } from '../../src/transports/websocket/peer.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';

const AUDIO_GOLDEN = '120d08011a040102030420807d2801';
const SEND_TEXT_JSON =
  '{"id":"123","label":"rtvi-ai","type":"send-text","data":{"content":"Hello World","options":{"run_immediately":true,"audio_response":true}}}';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

interface BrowserCodec {
  encodeAudioFrame(f: { id?: number; audio: Uint8Array; sampleRate: number; numChannels?: number; pts?: number }): Uint8Array;
  encodeMessageFrame(data: string): Uint8Array;
  decodeFrame(bytes: Uint8Array): PipecatFrame;
}

// The console's module is plain browser JavaScript (no types): loaded by URL so TypeScript does not resolve it.
const browser = (await import(pathToFileURL(`${process.cwd()}/src/console/public/frames.js`).href)) as BrowserCodec;

describe('pipecat.Frame golden vectors', () => {
  it('an AudioRawFrame (id 1, 01 02 03 04, 16 kHz, mono) is 12 0D 08 01 1A 04 01 02 03 04 20 80 7D 28 01', () => {
    const frame: PipecatFrame = { type: 'audio', id: 1, name: '', audio: Buffer.from([1, 2, 3, 4]), sampleRate: 16000, numChannels: 1 };
    expect(hex(encodeFrame(frame))).toBe(AUDIO_GOLDEN);
    expect(hex(browser.encodeAudioFrame({ id: 1, audio: new Uint8Array([1, 2, 3, 4]), sampleRate: 16000, numChannels: 1 }))).toBe(AUDIO_GOLDEN);
    for (const decode of [decodeFrame, (b: Uint8Array) => browser.decodeFrame(b)]) {
      const d = decode(Buffer.from(AUDIO_GOLDEN, 'hex'));
      expect(d).toMatchObject({ type: 'audio', id: 1, name: '', sampleRate: 16000, numChannels: 1 });
      expect(d.type === 'audio' && hex(d.audio)).toBe('01020304');
      expect('pts' in d).toBe(false);
    }
  });

  it('a MessageFrame with the 139-byte send-text JSON is 22 8E 01 0A 8B 01 + the JSON', () => {
    expect(Buffer.byteLength(SEND_TEXT_JSON)).toBe(139);
    const golden = `228e010a8b01${Buffer.from(SEND_TEXT_JSON).toString('hex')}`;
    expect(hex(encodeFrame({ type: 'message', data: SEND_TEXT_JSON }))).toBe(golden);
    expect(hex(browser.encodeMessageFrame(SEND_TEXT_JSON))).toBe(golden);
    for (const decode of [decodeFrame, (b: Uint8Array) => browser.decodeFrame(b)]) {
      expect(decode(Buffer.from(golden, 'hex'))).toEqual({ type: 'message', data: SEND_TEXT_JSON });
    }
  });

  it('round-trips every member, pts included, between the two codecs', () => {
    const frames: PipecatFrame[] = [
      { type: 'text', id: 7, name: 'TextFrame#7', text: 'héllo' },
      { type: 'transcription', id: 300, name: 't', text: 'hello world', userId: 'u1', timestamp: '2026-01-01T00:00:00Z' },
      { type: 'audio', id: 2 ** 40, name: '', audio: Buffer.alloc(640, 7), sampleRate: 48000, numChannels: 1, pts: 123_456_789_000 },
      { type: 'message', data: '{"label":"rtvi-ai","type":"bot-llm-text","data":{"text":"ünïcode ✓"}}' },
    ];
    for (const f of frames) {
      const viaDaemon = browser.decodeFrame(encodeFrame(f));
      const viaBrowser = decodeFrame(encodeFrame(viaDaemon));
      for (const d of [viaDaemon, viaBrowser]) {
        if (f.type === 'audio' && d.type === 'audio') {
          expect({ ...d, audio: hex(d.audio) }).toEqual({ ...f, audio: hex(f.audio) });
        } else expect(d).toEqual(f);
      }
    }
    const audio = browser.encodeAudioFrame({ id: 9, audio: new Uint8Array(640), sampleRate: 16000, pts: 5 });
    expect(decodeFrame(audio)).toMatchObject({ type: 'audio', id: 9, sampleRate: 16000, numChannels: 1, pts: 5 });
  });

  it('malformed input is a ProtocolError, never a crash', () => {
    const bad = [
      Buffer.from([0xff, 0xff, 0xff]),
      Buffer.from('hello world'),
      Buffer.alloc(0),
      Buffer.from([0x12, 0x05, 0x08]), // truncated member
      Buffer.from([0x4a, 0x01, 0x00]), // only an unknown field
    ];
    for (const b of bad) expect(() => decodeFrame(b)).toThrow(ProtocolError);
  });
});

describe('RTVI messages', () => {
  it('builds server messages without empty keys', () => {
    expect(JSON.parse(rtviMessage('bot-started-speaking'))).toEqual({ label: 'rtvi-ai', type: 'bot-started-speaking' });
    expect(JSON.parse(rtviMessage('bot-llm-text', { text: 'Hi' }))).toEqual({ label: 'rtvi-ai', type: 'bot-llm-text', data: { text: 'Hi' } });
    expect(JSON.parse(rtviErrorResponse(undefined, 'send-text needs an id'))).toEqual({
      label: 'rtvi-ai',
      type: 'error-response',
      data: { error: 'send-text needs an id' },
    });
  });

  it('parses send-text with RTVI defaults and refuses what is not an RTVI message', () => {
    expect(parseClientMessage(SEND_TEXT_JSON)).toEqual({ type: 'send-text', id: '123', content: 'Hello World', runImmediately: true, audioResponse: true });
    expect(parseClientMessage('{"label":"rtvi-ai","type":"send-text","data":{"content":"x","options":{"audio_response":false}}}')).toEqual({
      type: 'send-text',
      id: undefined,
      content: 'x',
      runImmediately: true,
      audioResponse: false,
    });
    expect(parseClientMessage('{"label":"rtvi-ai","type":"describe-actions","id":"7"}')).toEqual({ type: 'other', name: 'describe-actions', id: '7' });
    for (const bad of ['{', '[]', '"x"', '{"type":"send-text"}', '{"label":"rtvi-ai"}']) {
      expect(() => parseClientMessage(bad)).toThrow(ProtocolError);
    }
  });
});

class FakeSocket implements PeerSocket {
  bufferedAmount = 0;
  readyState = 1 as PeerSocket['readyState'];
  readonly sent: Uint8Array[] = [];
  terminated = false;
  closedWith: [number | undefined, string | Buffer | undefined] | null = null;
  send(data: unknown): void {
    this.sent.push(data as Uint8Array);
  }
  close(code?: number, reason?: string | Buffer): void {
    this.closedWith = [code, reason];
    this.readyState = 2;
  }
  terminate(): void {
    this.terminated = true;
    this.readyState = 3;
  }
  pause(): void {}
  resume(): void {}
}

const silentLog = createLogger('silent');

describe('a slow WebSocket client', () => {
  it('gets frames dropped (counted) while congested, and is cut off when it stays congested', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const ws = new FakeSocket();
    let now = 0;
    const peer = new WsPeer(ws, metrics, silentLog, { highWaterBytes: 1000, maxCongestedMs: 5000, now: () => now });
    peer.sendAudio(Buffer.alloc(640));
    expect(ws.sent).toHaveLength(1);
    ws.bufferedAmount = 5000;
    for (let i = 0; i < 100; i++) {
      now += 20;
      peer.sendAudio(Buffer.alloc(640));
    }
    expect(ws.sent).toHaveLength(1);
    expect(peer.dropped).toBe(100);
    // The client catches up: frames flow again and the congestion clock restarts.
    ws.bufferedAmount = 0;
    peer.notice('bot-llm-text', { text: 'hi' });
    expect(ws.sent).toHaveLength(2);
    ws.bufferedAmount = 5000;
    for (let i = 0; i < 260 && !ws.terminated; i++) {
      now += 20;
      peer.sendAudio(Buffer.alloc(640));
    }
    expect(ws.terminated).toBe(true);
    expect(now).toBeGreaterThanOrEqual(5000 + 2000);
    expect(peer.isClosed).toBe(true);
    expect((await metrics.droppedFramesTotal.get()).values[0]?.value).toBe(peer.dropped);
    peer.sendAudio(Buffer.alloc(640));
    expect(ws.sent).toHaveLength(2);
  });
});

describe('WebSocket media output', () => {
  it('sends one 20 ms 16 kHz frame per tick, only while the bot speaks, and reports playback', () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const sent: Buffer[] = [];
    let closed = 0;
    const clock = new OutputClock();
    const media = new WebSocketMedia({ sendAudio: (pcm) => sent.push(Buffer.from(pcm)), close: () => closed++ }, clock, metrics);
    const sink = media.sink;
    const events: string[] = [];
    sink.setPlaybackListener({ playbackStarted: () => events.push('started'), playbackStopped: () => events.push('stopped') });
    expect(sink.sampleRate).toBe(16000);
    // On the clock from the start; its rate never follows the client's.
    expect(clock.size).toBe(1);
    expect('changeRate' in sink).toBe(false);

    const pcm = Buffer.alloc(640 * 2 + 100);
    for (let i = 0; i < pcm.length; i += 2) pcm.writeInt16LE(1000, i);
    sink.push(pcm);
    sink.flush();
    expect(sink.queuedFrames).toBe(3);
    for (let i = 0; i < 5; i++) sink.tick();
    expect(sent.map((b) => b.length)).toEqual([640, 640, 640]);
    expect(sent[2]?.readInt16LE(98)).toBe(1000);
    expect(sent[2]?.readInt16LE(100)).toBe(0); // padded end of the reply
    expect(events).toEqual(['started', 'stopped']);
    expect(sink.botFramesWritten).toBe(3);

    sink.push(Buffer.alloc(640 * 4));
    sink.clear();
    sink.tick();
    expect(sent).toHaveLength(3);

    media.close(true);
    media.close(false);
    expect(closed).toBe(1);
    expect(clock.size).toBe(0);
    clock.close();
  });
});
