// Asterisk Audiosocket wire format (SPEC §2.1): kind (1 byte) · length (uint16 big-endian) · payload. Encoding
// and an incremental decoder that survives messages split across or merged within TCP reads, with hard limits.

import { ProtocolError } from '../../errors.js';

export const KIND_HANGUP = 0x00;
export const KIND_UUID = 0x01;
export const KIND_DTMF = 0x03;
/** slin 8 kHz: what the AudioSocket() dialplan app always uses. */
export const KIND_AUDIO_8K = 0x10;
export const KIND_AUDIO_16K = 0x12;
export const KIND_AUDIO_FIRST = 0x10;
export const KIND_AUDIO_LAST = 0x18;
export const KIND_ERROR = 0xff;

export const HEADER_BYTES = 3;
/** The length field is a uint16. */
export const MAX_PAYLOAD_BYTES = 0xffff;
/** Real Asterisk sends 320–640 byte frames; anything near this is hostile or broken. */
export const DEFAULT_MAX_FRAME_BYTES = 16384;

/** Sample rate of each audio kind (s16le mono); 0x11–0x18 need Asterisk ≥ 20.17/21.12/22.7/23.1. */
export const RATE_OF_KIND: Readonly<Record<number, number>> = Object.freeze({
  0x10: 8000,
  0x11: 12000,
  0x12: 16000,
  0x13: 24000,
  0x14: 32000,
  0x15: 44100,
  0x16: 48000,
  0x17: 96000,
  0x18: 192000,
});

export function isAudioKind(kind: number): boolean {
  return kind >= KIND_AUDIO_FIRST && kind <= KIND_AUDIO_LAST;
}

/** The audio kind carrying `rate` Hz; throws RangeError for a rate Audiosocket cannot carry. */
export function kindForRate(rate: number): number {
  for (let kind = KIND_AUDIO_FIRST; kind <= KIND_AUDIO_LAST; kind++) {
    if (RATE_OF_KIND[kind] === rate) return kind;
  }
  throw new RangeError(`Audiosocket has no audio kind for ${rate} Hz`);
}

/** The sample rate of an audio kind; throws RangeError for a non-audio kind. */
export function rateOfKind(kind: number): number {
  const rate = isAudioKind(kind) ? RATE_OF_KIND[kind] : undefined;
  if (rate === undefined) throw new RangeError(`kind 0x${kind.toString(16)} is not an audio kind`);
  return rate;
}

function isKnownKind(kind: number): boolean {
  return kind === KIND_HANGUP || kind === KIND_UUID || kind === KIND_DTMF || kind === KIND_ERROR || isAudioKind(kind);
}

/**
 * One wire message as ONE buffer (header + payload): Asterisk hangs up if a payload arrives more than 5 ms after
 * its header, so callers must write it with a single socket.write. Refuses what would end a real call:
 * zero-length or odd-length audio, unknown kinds, payloads over 65535 bytes.
 */
export function encodeMessage(kind: number, payload?: Uint8Array): Buffer {
  const length = payload?.length ?? 0;
  if (!Number.isInteger(kind) || !isKnownKind(kind)) throw new RangeError(`unknown Audiosocket kind ${kind}`);
  if (length > MAX_PAYLOAD_BYTES) throw new RangeError(`Audiosocket payload of ${length} bytes exceeds 65535`);
  if (isAudioKind(kind) && (length === 0 || length % 2 !== 0)) {
    throw new RangeError(`Audiosocket audio must be a non-empty even number of bytes, got ${length}`);
  }
  const out = Buffer.allocUnsafe(HEADER_BYTES + length);
  out[0] = kind;
  out.writeUInt16BE(length, 1);
  if (payload !== undefined && length > 0) out.set(payload, HEADER_BYTES);
  return out;
}

export interface AudiosocketMessage {
  kind: number;
  /**
   * The payload bytes. Usually a VIEW into the chunk given to push() (copied only when a payload spans chunks).
   * Buffers read from a net.Socket are never reused, so keeping the view is safe; copy it before mutating.
   */
  payload: Buffer;
}

export interface DecoderOptions {
  /** Largest accepted payload length; checked as soon as a header is complete. Default 16384. */
  maxFrameBytes?: number;
}

const DTMF_DIGITS = new Set('0123456789*#ABCD'.split('').map((c) => c.charCodeAt(0)));

const enum State {
  Header,
  Payload,
}

/**
 * Incremental decoder in the manner of ws's Receiver: feed it chunks of any size with push(); it emits each
 * complete message through the callback. The first violation throws a ProtocolError (kind = metric label) and
 * the decoder is dead from then on: later pushes are ignored and buffered bytes are released.
 */
export class AudiosocketDecoder {
  private readonly maxFrameBytes: number;
  private readonly onMessage: (msg: AudiosocketMessage) => void;
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  /** Read position inside chunks[0]: avoids re-slicing the chunk for every header byte. */
  private offset = 0;
  private state = State.Header;
  private kind = 0;
  private length = 0;
  private failure: ProtocolError | undefined;
  private stopped = false;

  constructor(onMessage: (msg: AudiosocketMessage) => void, options: DecoderOptions = {}) {
    this.onMessage = onMessage;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  /** The error that killed the decoder, if any. */
  get error(): ProtocolError | undefined {
    return this.failure;
  }

  /** Bytes held while waiting for the rest of a message (never more than one header + maxFrameBytes + a chunk). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** True once stopped or failed: nothing more will be emitted. */
  get dead(): boolean {
    return this.stopped;
  }

  /** Stop emitting (e.g. the connection closed in a callback); remaining bytes are discarded. */
  stop(): void {
    this.stopped = true;
    this.chunks.length = 0;
    this.buffered = 0;
    this.offset = 0;
  }

  push(chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (!this.stopped) {
      if (this.state === State.Header) {
        if (this.buffered < HEADER_BYTES) return;
        const kind = this.readByte();
        const length = (this.readByte() << 8) | this.readByte();
        this.checkHeader(kind, length);
        this.kind = kind;
        this.length = length;
        this.state = State.Payload;
      }
      if (this.buffered < this.length) return;
      const payload = this.consume(this.length);
      this.state = State.Header;
      if (this.kind === KIND_DTMF && !DTMF_DIGITS.has(payload[0] ?? 0)) {
        this.fail('bad_dtmf', `DTMF byte 0x${(payload[0] ?? 0).toString(16)} is not one of 0-9*#A-D`);
      }
      this.onMessage({ kind: this.kind, payload });
    }
  }

  // Limits are enforced on the header alone, so a hostile length never makes us wait for (or buffer) its payload.
  private checkHeader(kind: number, length: number): void {
    if (!isKnownKind(kind)) this.fail('unknown_kind', `unknown message kind 0x${kind.toString(16)}`);
    if (length > this.maxFrameBytes) {
      this.fail('frame_too_large', `message of ${length} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
    }
    if (isAudioKind(kind) && length % 2 !== 0) this.fail('odd_audio', `audio payload of odd length ${length}`);
    if (kind === KIND_UUID && length !== 16) this.fail('bad_uuid', `UUID payload of ${length} bytes, want 16`);
    if (kind === KIND_DTMF && length !== 1) this.fail('bad_dtmf', `DTMF payload of ${length} bytes, want 1`);
  }

  private fail(kind: string, message: string): never {
    this.failure = new ProtocolError(kind, `audiosocket: ${message}`);
    this.stop();
    throw this.failure;
  }

  private readByte(): number {
    const first = this.chunks[0] as Buffer; // callers checked `buffered`
    const byte = first[this.offset++] as number;
    if (this.offset === first.length) this.dropFirst();
    this.buffered--;
    return byte;
  }

  /** Takes n bytes: a view when they sit in one chunk, one copy when they span several. */
  private consume(n: number): Buffer {
    const first = this.chunks[0];
    if (first === undefined || n === 0) return EMPTY;
    this.buffered -= n;
    const available = first.length - this.offset;
    if (n <= available) {
      const view = n === first.length ? first : first.subarray(this.offset, this.offset + n);
      this.offset += n;
      if (n === available) this.dropFirst();
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const buf = this.chunks[0] as Buffer;
      const take = Math.min(buf.length - this.offset, n - filled);
      buf.copy(out, filled, this.offset, this.offset + take);
      filled += take;
      this.offset += take;
      if (this.offset === buf.length) this.dropFirst();
    }
    return out;
  }

  private dropFirst(): void {
    this.chunks.shift();
    this.offset = 0;
  }
}

const EMPTY = Buffer.alloc(0);
