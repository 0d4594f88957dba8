// SPEC §13 (Audiosocket) as properties of the decoder: any byte stream, split at any points, decodes exactly as the
// unsplit stream does and as an independent reference reading of SPEC §2.1/§2.2 does — the same messages, then
// the same ProtocolError kind at the same message — and valid streams round-trip through encodeMessage.
// Full run: 100,000 cases in all; short run: 5,000.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import {
  AudiosocketDecoder,
  HEADER_BYTES,
  MAX_PAYLOAD_BYTES,
  encodeMessage,
} from '../../src/transports/audiosocket/protocol.js';
import { byScale } from './support/scale.js';

const RUNS = {
  split: byScale(2_500, 50_000),
  roundTrip: byScale(1_500, 30_000),
  encode: byScale(1_000, 20_000),
};

interface Decoded {
  kind: number;
  payload: string; // hex: compared by value
}

interface Outcome {
  messages: Decoded[];
  error: string | undefined;
  /** Bytes held after the last push (0 once failed). */
  buffered: number;
}

// ----- An independent reading of the wire rules, kept deliberately naive (one pass over one buffer). --------------

const KNOWN = (k: number): boolean => k === 0x00 || k === 0x01 || k === 0x03 || k === 0xff || (k >= 0x10 && k <= 0x18);
const AUDIO = (k: number): boolean => k >= 0x10 && k <= 0x18;
const DIGITS = new Set([...'0123456789*#ABCD'].map((c) => c.charCodeAt(0)));

function reference(bytes: Uint8Array, maxFrameBytes: number): Outcome {
  const messages: Decoded[] = [];
  let i = 0;
  const fail = (error: string): Outcome => ({ messages, error, buffered: 0 });
  while (bytes.length - i >= HEADER_BYTES) {
    const kind = bytes[i] ?? -1;
    const length = ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    // Limits come from the header alone, in this order.
    if (!KNOWN(kind)) return fail('unknown_kind');
    if (length > maxFrameBytes) return fail('frame_too_large');
    if (AUDIO(kind) && length % 2 !== 0) return fail('odd_audio');
    if (kind === 0x01 && length !== 16) return fail('bad_uuid');
    if (kind === 0x03 && length !== 1) return fail('bad_dtmf');
    if (bytes.length - i - HEADER_BYTES < length) {
      return { messages, error: undefined, buffered: bytes.length - i - HEADER_BYTES };
    }
    const payload = bytes.subarray(i + HEADER_BYTES, i + HEADER_BYTES + length);
    if (kind === 0x03 && !DIGITS.has(payload[0] ?? 0)) return fail('bad_dtmf');
    messages.push({ kind, payload: Buffer.from(payload).toString('hex') });
    i += HEADER_BYTES + length;
  }
  return { messages, error: undefined, buffered: bytes.length - i };
}

// ----- The decoder under test, fed chunk by chunk. ------------------------------------------------------------------

function decodeChunks(chunks: Uint8Array[], maxFrameBytes: number): Outcome {
  const messages: Decoded[] = [];
  const decoder = new AudiosocketDecoder(
    // Payloads may be views of the pushed chunks: read them now.
    (m) => messages.push({ kind: m.kind, payload: m.payload.toString('hex') }),
    { maxFrameBytes },
  );
  let error: string | undefined;
  for (const chunk of chunks) {
    const before = messages.length;
    try {
      decoder.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    } catch (err) {
      // Fail cleanly: only ever a ProtocolError, only once, and the decoder is dead with nothing buffered.
      if (!(err instanceof ProtocolError)) throw err;
      if (error !== undefined) throw new Error(`a second throw after ${error}: ${err.kind}`, { cause: err });
      error = err.kind;
      expect(decoder.error).toBe(err);
      expect(decoder.dead).toBe(true);
      expect(decoder.bufferedBytes).toBe(0);
      continue;
    }
    if (error !== undefined) expect(messages.length).toBe(before); // dead: later pushes emit nothing
    // Bounded memory: never more than one partial header or one partial payload within the limit.
    expect(decoder.bufferedBytes).toBeLessThan(Math.max(HEADER_BYTES, maxFrameBytes));
  }
  return { messages, error, buffered: decoder.bufferedBytes };
}

function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(bytes.subarray(from, p)); // empty chunks included: push() must ignore them
    from = p;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

// ----- Generators: mostly message-shaped streams, so that the interesting states are reached often. ----------------

const maxFrameArb = fc.constantFrom(320, 640, 1000, 16_384);

const digitArb = fc.constantFrom(...DIGITS);
const validMessageArb: fc.Arbitrary<{ kind: number; payload: Uint8Array }> = fc.oneof(
  fc.record({ kind: fc.integer({ min: 0x10, max: 0x18 }), payload: fc.integer({ min: 1, max: 160 }).chain((n) => fc.uint8Array({ minLength: 2 * n, maxLength: 2 * n })) }),
  fc.record({ kind: fc.constant(0x01), payload: fc.uint8Array({ minLength: 16, maxLength: 16 }) }),
  fc.record({ kind: fc.constant(0x03), payload: digitArb.map((d) => Uint8Array.of(d)) }),
  fc.record({ kind: fc.constant(0x00), payload: fc.uint8Array({ maxLength: 4 }) }),
  fc.record({ kind: fc.constant(0xff), payload: fc.uint8Array({ maxLength: 1 }) }),
);

/** A header with arbitrary fields (any kind, any length up to 65535) followed by some of the bytes it announces. */
const hostileSegmentArb = fc
  .record({
    kind: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x00, 0x01, 0x03, 0x10, 0x12, 0x18, 0xff)),
    length: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: MAX_PAYLOAD_BYTES }), fc.constantFrom(1, 15, 16, 17, 319, 320, 321, 640, 16_384, 16_385, 65_535)),
    body: fc.uint8Array({ maxLength: 64 }),
  })
  .map(({ kind, length, body }) => {
    const out = new Uint8Array(HEADER_BYTES + body.length);
    out[0] = kind;
    out[1] = length >> 8;
    out[2] = length & 0xff;
    out.set(body, HEADER_BYTES);
    return out;
  });

const segmentArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 5, arbitrary: validMessageArb.map((m) => new Uint8Array(encodeMessage(m.kind, m.payload))) },
  { weight: 2, arbitrary: hostileSegmentArb },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 48 }) },
  // A DTMF message whose byte is not a digit.
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }).map((b) => Uint8Array.of(0x03, 0x00, 0x01, b)) },
);

const streamArb = fc.array(segmentArb, { maxLength: 12 }).map((segments) => {
  const total = segments.reduce((n, s) => n + s.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const s of segments) {
    out.set(s, at);
    at += s.length;
  }
  return out;
});

const cutsArb = fc.oneof(
  { weight: 4, arbitrary: fc.array(fc.nat(), { maxLength: 16 }) },
  // Byte by byte: the slow-drip peer.
  { weight: 1, arbitrary: fc.constant(Array.from({ length: 4096 }, (_, i) => i)) },
);

describe('AudiosocketDecoder under fuzzing', () => {
  it(`any stream split anywhere decodes like the unsplit stream and the reference (${RUNS.split} cases)`, () => {
    let failures = 0;
    let messages = 0;
    fc.assert(
      fc.property(streamArb, cutsArb, maxFrameArb, (bytes, cuts, maxFrameBytes) => {
        const whole = decodeChunks([bytes], maxFrameBytes);
        const parts = decodeChunks(split(bytes, cuts), maxFrameBytes);
        const ref = reference(bytes, maxFrameBytes);
        expect(parts).toEqual(whole);
        expect(whole).toEqual(ref);
        if (whole.error !== undefined) failures++;
        messages += whole.messages.length;
      }),
      { numRuns: RUNS.split },
    );
    // The generator really reaches both outcomes often (a property that never fails proves little). The bounds
    // leave room for the random seed: about one message per case is typical, never far below half of that.
    expect(failures).toBeGreaterThan(RUNS.split / 10);
    expect(failures).toBeLessThan(RUNS.split * 0.9);
    expect(messages).toBeGreaterThan(RUNS.split / 2);
  });

  it(`valid messages round-trip through encodeMessage, split anywhere (${RUNS.roundTrip} cases)`, () => {
    fc.assert(
      fc.property(fc.array(validMessageArb, { minLength: 1, maxLength: 20 }), cutsArb, (msgs, cuts) => {
        const encoded = Buffer.concat(msgs.map((m) => encodeMessage(m.kind, m.payload)));
        const out = decodeChunks(split(encoded, cuts), 16_384);
        expect(out.error).toBeUndefined();
        expect(out.buffered).toBe(0);
        expect(out.messages).toEqual(msgs.map((m) => ({ kind: m.kind, payload: Buffer.from(m.payload).toString('hex') })));
      }),
      { numRuns: RUNS.roundTrip },
    );
  });

  it(`encodeMessage writes kind · uint16 BE length · payload, or refuses what would end a real call (${RUNS.encode} cases)`, () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1, max: 256 }),
        fc.oneof(fc.uint8Array({ maxLength: 700 }), fc.constantFrom(65_535, 65_536).map((n) => new Uint8Array(n))),
        (kind, payload) => {
          const refused = !KNOWN(kind) || payload.length > MAX_PAYLOAD_BYTES || (AUDIO(kind) && (payload.length === 0 || payload.length % 2 !== 0));
          if (refused) {
            expect(() => encodeMessage(kind, payload)).toThrow(RangeError);
            return;
          }
          const out = encodeMessage(kind, payload);
          expect(out.length).toBe(HEADER_BYTES + payload.length);
          expect(out[0]).toBe(kind);
          expect(out.readUInt16BE(1)).toBe(payload.length);
          expect(out.subarray(HEADER_BYTES).equals(Buffer.from(payload))).toBe(true);
          // What the encoder allows, the decoder reads back (or refuses by the same limits a server applies).
          const back = decodeChunks([out], MAX_PAYLOAD_BYTES);
          if (back.error === undefined) {
            expect(back.messages).toEqual([{ kind, payload: Buffer.from(payload).toString('hex') }]);
          } else {
            expect(['bad_uuid', 'bad_dtmf']).toContain(back.error);
          }
        },
      ),
      { numRuns: RUNS.encode },
    );
  });
});
