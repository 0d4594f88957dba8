// Audiosocket codec: hex wire fixtures, messages split at every byte boundary or merged, and each hard limit.

import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import {
  AudiosocketDecoder,
  KIND_AUDIO_8K,
  KIND_DTMF,
  KIND_HANGUP,
  KIND_UUID,
  RATE_OF_KIND,
  encodeMessage,
  isAudioKind,
  kindForRate,
  type AudiosocketMessage,
} from '../../src/transports/audiosocket/protocol.js';

const UUID_HEX = '6f1b2c3d4e5f40718293a4b5c6d7e8f9';
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function decodeAll(chunks: Buffer[], maxFrameBytes?: number): AudiosocketMessage[] {
  const out: AudiosocketMessage[] = [];
  // Copy payloads: they may be views of the chunks, and the test compares after decoding.
  const d = new AudiosocketDecoder(
    (m) => out.push({ kind: m.kind, payload: Buffer.from(m.payload) }),
    maxFrameBytes === undefined ? {} : { maxFrameBytes },
  );
  for (const c of chunks) d.push(c);
  return out;
}

function decodeError(bytes: Buffer, maxFrameBytes?: number): ProtocolError {
  try {
    decodeAll([bytes], maxFrameBytes);
  } catch (err) {
    if (err instanceof ProtocolError) return err;
    throw err;
  }
  throw new Error('expected a ProtocolError');
}

const audio320 = Buffer.alloc(320, 0x7f);
const stream = Buffer.concat([
  hex(`01 0010 ${UUID_HEX}`),
  hex('10 0140'),
  audio320,
  hex('03 0001 35'), // DTMF '5'
  hex('12 0004 01020304'),
  hex('ff 0000'),
  hex('00 0000'),
]);
const expected: AudiosocketMessage[] = [
  { kind: 0x01, payload: hex(UUID_HEX) },
  { kind: 0x10, payload: audio320 },
  { kind: 0x03, payload: Buffer.from('5') },
  { kind: 0x12, payload: hex('01020304') },
  { kind: 0xff, payload: Buffer.alloc(0) },
  { kind: 0x00, payload: Buffer.alloc(0) },
];

describe('encodeMessage', () => {
  it('matches the wire fixtures', () => {
    expect(encodeMessage(KIND_UUID, hex(UUID_HEX)).toString('hex')).toBe(`010010${UUID_HEX}`);
    const a = encodeMessage(KIND_AUDIO_8K, audio320);
    expect(a.subarray(0, 3).toString('hex')).toBe('100140');
    expect(a.length).toBe(323);
    expect(encodeMessage(KIND_HANGUP).toString('hex')).toBe('000000');
    expect(encodeMessage(KIND_DTMF, Buffer.from('#')).toString('hex')).toBe('030001' + '23');
    // Big-endian length: 0x0280 = 640.
    expect(encodeMessage(0x12, Buffer.alloc(640)).subarray(0, 3).toString('hex')).toBe('120280');
  });

  it('refuses what would hang up a real call', () => {
    expect(() => encodeMessage(KIND_AUDIO_8K)).toThrow(RangeError);
    expect(() => encodeMessage(KIND_AUDIO_8K, Buffer.alloc(0))).toThrow(/non-empty/);
    expect(() => encodeMessage(KIND_AUDIO_8K, Buffer.alloc(3))).toThrow(RangeError);
    expect(() => encodeMessage(KIND_AUDIO_8K, Buffer.alloc(65536))).toThrow(/65535/);
    expect(() => encodeMessage(0x42, Buffer.alloc(2))).toThrow(/unknown/);
  });
});

describe('kinds and rates', () => {
  it('maps every audio kind to its rate and back', () => {
    expect(kindForRate(8000)).toBe(0x10);
    expect(kindForRate(16000)).toBe(0x12);
    expect(kindForRate(44100)).toBe(0x15);
    expect(kindForRate(192000)).toBe(0x18);
    for (let k = 0x10; k <= 0x18; k++) expect(kindForRate(RATE_OF_KIND[k] as number)).toBe(k);
    expect(() => kindForRate(22050)).toThrow(RangeError);
    expect(isAudioKind(0x10) && isAudioKind(0x18)).toBe(true);
    expect(isAudioKind(0x0f) || isAudioKind(0x19) || isAudioKind(0x01)).toBe(false);
  });
});

describe('AudiosocketDecoder', () => {
  it('decodes many messages from one chunk', () => {
    expect(decodeAll([stream])).toEqual(expected);
  });

  it('decodes the same stream split at every byte boundary', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      expect(decodeAll([stream.subarray(0, cut), stream.subarray(cut)])).toEqual(expected);
    }
  });

  it('decodes the stream fed one byte at a time (slow drip)', () => {
    const bytes = [...stream].map((b) => Buffer.from([b]));
    expect(decodeAll(bytes)).toEqual(expected);
  });

  it('returns views, not copies, when a payload sits in one chunk', () => {
    const chunk = Buffer.concat([hex('10 0140'), audio320]);
    let payload: Buffer | undefined;
    new AudiosocketDecoder((m) => (payload = m.payload)).push(chunk);
    expect(payload?.buffer).toBe(chunk.buffer);
    expect(payload?.length).toBe(320);
  });

  it('rejects a huge length from the header alone, before any payload', () => {
    // 0x10 with length 0xffff; the limit is 16384 by default (the 70000-byte case cannot even be expressed).
    const err = decodeError(hex('10 ffff'));
    expect(err.kind).toBe('frame_too_large');
    expect(decodeError(hex('10 4002'), 16384).kind).toBe('frame_too_large'); // 16386
    expect(decodeAll([hex('10 4000'), Buffer.alloc(16384)])).toHaveLength(1); // exactly the limit is fine
  });

  it('rejects odd-length audio, unknown kinds, bad DTMF and short UUIDs', () => {
    expect(decodeError(hex('10 0141')).kind).toBe('odd_audio');
    expect(decodeError(hex('42 0002 0000')).kind).toBe('unknown_kind');
    expect(decodeError(hex('03 0001 78')).kind).toBe('bad_dtmf'); // 'x'
    expect(decodeError(hex('03 0002 3132')).kind).toBe('bad_dtmf');
    expect(decodeError(hex('01 000f')).kind).toBe('bad_uuid');
    for (const d of '0123456789*#ABCD') {
      expect(decodeAll([encodeMessage(KIND_DTMF, Buffer.from(d))])[0]?.payload.toString()).toBe(d);
    }
  });

  it('is dead after an error: later pushes emit nothing', () => {
    const seen: number[] = [];
    const d = new AudiosocketDecoder((m) => seen.push(m.kind));
    expect(() => d.push(hex('42 0000'))).toThrow(ProtocolError);
    expect(d.error?.kind).toBe('unknown_kind');
    expect(d.dead).toBe(true);
    d.push(hex('00 0000'));
    expect(seen).toEqual([]);
    expect(d.bufferedBytes).toBe(0);
  });

  it('stop() discards the rest of a chunk being decoded', () => {
    const seen: number[] = [];
    const d = new AudiosocketDecoder((m) => {
      seen.push(m.kind);
      if (m.kind === KIND_HANGUP) d.stop();
    });
    d.push(hex('00 0000 10 0002 0000'));
    expect(seen).toEqual([0x00]);
  });

  it('buffers at most one partial message', () => {
    const d = new AudiosocketDecoder(() => {});
    d.push(hex('10 0140'));
    d.push(Buffer.alloc(100));
    expect(d.bufferedBytes).toBe(100);
    d.push(Buffer.alloc(220));
    expect(d.bufferedBytes).toBe(0);
  });
});
