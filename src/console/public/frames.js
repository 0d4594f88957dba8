// Pipecat's protobuf frames (proto/frames.proto) for the browser, written by hand so the console needs no build
// step and no library: encodes audio and message frames, decodes all four kinds. Mirrors src/transports/websocket/frames.ts.

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

function varintSize(n) {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** A growing-free writer: sizes are computed first, then bytes written into one Uint8Array. */
class Writer {
  constructor(size) {
    this.bytes = new Uint8Array(size);
    this.pos = 0;
  }
  varint(n) {
    while (n >= 128) {
      this.bytes[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.bytes[this.pos++] = n;
  }
  raw(b) {
    this.bytes.set(b, this.pos);
    this.pos += b.length;
  }
}

// Each field: [number, 'varint' | 'bytes', value]; proto3 leaves zero/empty scalars out (pts is `optional`).
function messageSize(fields) {
  let size = 0;
  for (const [num, kind, v] of fields) {
    size += varintSize(num << 3);
    size += kind === 'varint' ? varintSize(v) : varintSize(v.length) + v.length;
  }
  return size;
}

function encodeFrameMember(member, fields) {
  const inner = messageSize(fields);
  const w = new Writer(varintSize((member << 3) | 2) + varintSize(inner) + inner);
  w.varint((member << 3) | 2);
  w.varint(inner);
  for (const [num, kind, v] of fields) {
    w.varint((num << 3) | (kind === 'varint' ? 0 : 2));
    if (kind === 'varint') w.varint(v);
    else {
      w.varint(v.length);
      w.raw(v);
    }
  }
  return w.bytes;
}

/** A Frame{audio}: `audio` is s16le bytes (Uint8Array). */
export function encodeAudioFrame({ id = 0, name = '', audio, sampleRate, numChannels = 1, pts }) {
  const fields = [];
  if (id) fields.push([1, 'varint', id]);
  if (name) fields.push([2, 'bytes', textEncoder.encode(name)]);
  if (audio.length) fields.push([3, 'bytes', audio]);
  if (sampleRate) fields.push([4, 'varint', sampleRate]);
  if (numChannels) fields.push([5, 'varint', numChannels]);
  if (pts !== undefined) fields.push([6, 'varint', pts]);
  return encodeFrameMember(2, fields);
}

/** A Frame{message}: `data` is a JSON string. */
export function encodeMessageFrame(data) {
  const bytes = textEncoder.encode(data);
  return encodeFrameMember(4, bytes.length ? [[1, 'bytes', bytes]] : []);
}

/** Reads one message's fields into {number: value}; varints as numbers, length-delimited as Uint8Array. */
function readFields(bytes) {
  const out = {};
  let pos = 0;
  const varint = () => {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= bytes.length) throw new Error('truncated varint');
      const b = bytes[pos++];
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw new Error('varint too long');
  };
  while (pos < bytes.length) {
    const tag = varint();
    const num = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === 0) out[num] = varint();
    else if (wire === 2) {
      const len = varint();
      if (pos + len > bytes.length) throw new Error('truncated field');
      out[num] = bytes.subarray(pos, pos + len);
      pos += len;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

const str = (v) => (v instanceof Uint8Array ? textDecoder.decode(v) : '');
const num = (v) => (typeof v === 'number' ? v : 0);

/** Decodes a Frame to {type: 'audio'|'text'|'transcription'|'message', …}; throws on malformed input. */
export function decodeFrame(bytes) {
  const outer = readFields(bytes);
  const member = [1, 2, 3, 4].filter((n) => outer[n] instanceof Uint8Array).pop();
  if (member === undefined) throw new Error('no frame member set');
  const f = readFields(outer[member]);
  switch (member) {
    case 1:
      return { type: 'text', id: num(f[1]), name: str(f[2]), text: str(f[3]) };
    case 2: {
      const frame = {
        type: 'audio',
        id: num(f[1]),
        name: str(f[2]),
        audio: f[3] instanceof Uint8Array ? f[3] : new Uint8Array(0),
        sampleRate: num(f[4]),
        numChannels: num(f[5]),
      };
      if (typeof f[6] === 'number') frame.pts = f[6];
      return frame;
    }
    case 3:
      return { type: 'transcription', id: num(f[1]), name: str(f[2]), text: str(f[3]), userId: str(f[4]), timestamp: str(f[5]) };
    default:
      return { type: 'message', data: str(f[1]) };
  }
}
