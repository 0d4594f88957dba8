// Pipecat's protobuf frames (SPEC §9, proto/frames.proto) to and from plain objects. The .proto file is loaded
// with protobufjs at runtime, found relative to the package root, so src/ (tsx, vitest) and dist/ both work.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { ProtocolError, messageOf } from '../../errors.js';

export interface AudioRawFrame {
  type: 'audio';
  id: number;
  name: string;
  /** s16le PCM (interleaved when numChannels > 1). */
  audio: Uint8Array;
  sampleRate: number;
  numChannels: number;
  pts?: number;
}

export interface TextFrame {
  type: 'text';
  id: number;
  name: string;
  text: string;
}

export interface TranscriptionFrame {
  type: 'transcription';
  id: number;
  name: string;
  text: string;
  userId: string;
  timestamp: string;
}

export interface MessageFrame {
  type: 'message';
  /** A JSON document (RTVI messages). */
  data: string;
}

/** One `pipecat.Frame`: exactly one member of its `frame` oneof. */
export type PipecatFrame = AudioRawFrame | TextFrame | TranscriptionFrame | MessageFrame;

// src/http/ and dist/http/ are both two levels below the package root, where proto/ lives (the Dockerfile copies it).
const PROTO_PATH = fileURLToPath(new URL('../../../proto/frames.proto', import.meta.url));

let frameType: protobuf.Type | null = null;

/** The `pipecat.Frame` type, loaded once. Throws a clear error when proto/frames.proto is missing. */
export function loadFrameType(): protobuf.Type {
  if (frameType !== null) return frameType;
  if (!existsSync(PROTO_PATH)) throw new Error(`cannot load the Pipecat frame definitions: ${PROTO_PATH} is missing`);
  frameType = protobuf.loadSync(PROTO_PATH).lookupType('pipecat.Frame');
  return frameType;
}

/** Serialises one frame as a `pipecat.Frame`. */
export function encodeFrame(frame: PipecatFrame): Uint8Array {
  const { type, ...fields } = frame;
  // Plain objects with the camelCase field names are what protobufjs' generated encoder reads; no create() copy.
  return loadFrameType().encode({ [type]: fields }).finish();
}

type Decoded = Record<string, Record<string, unknown> | string | undefined>;

const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/**
 * Parses one `pipecat.Frame`. Anything that is not a Frame with one member of its oneof set is a ProtocolError
 * (kind `frame`): the peer gets an error message, never a crash.
 */
export function decodeFrame(bytes: Uint8Array): PipecatFrame {
  const type = loadFrameType();
  let obj: Decoded;
  try {
    // longs → Number: ids and pts fit in 2^53 for any real stream; bytes stay Buffers (views of the message).
    obj = type.toObject(type.decode(bytes), { longs: Number, oneofs: true });
  } catch (err) {
    throw new ProtocolError('frame', `not a pipecat.Frame: ${messageOf(err)}`);
  }
  const which = obj['frame'];
  const f = typeof which === 'string' ? obj[which] : undefined;
  if (typeof f !== 'object') throw new ProtocolError('frame', 'the frame has no member of its oneof set (text, audio, transcription, message)');
  switch (which) {
    case 'audio': {
      const audio = f['audio'] instanceof Uint8Array ? f['audio'] : new Uint8Array(0);
      const out: AudioRawFrame = {
        type: 'audio',
        id: num(f['id']),
        name: str(f['name']),
        audio,
        sampleRate: num(f['sampleRate']),
        numChannels: num(f['numChannels']),
      };
      if (typeof f['pts'] === 'number') out.pts = f['pts'];
      return out;
    }
    case 'text':
      return { type: 'text', id: num(f['id']), name: str(f['name']), text: str(f['text']) };
    case 'transcription':
      return {
        type: 'transcription',
        id: num(f['id']),
        name: str(f['name']),
        text: str(f['text']),
        userId: str(f['userId']),
        timestamp: str(f['timestamp']),
      };
    case 'message':
      return { type: 'message', data: str(f['data']) };
    default:
      throw new ProtocolError('frame', `unknown frame member ${typeof which === 'string' ? which : '?'}`);
  }
}
