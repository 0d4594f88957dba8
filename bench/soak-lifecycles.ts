// The call lifecycles the soak mixes (bench/soak.ts), each as the daemon's real peers would produce it:
//
// - voice: an Audiosocket call of the full cloud pipeline (Deepgram → OpenAI → Cartesia fakes): the greeting starts,
//   the caller speaks over it (a barge-in: a recorded Asterisk prompt), the pause ends the turn, the bot answers,
//   the caller hangs up (≈ 2.6 s of paced 20 ms frames).
// - early hang-up: an Audiosocket call hung up during the greeting (3 frames).
// - text: an ai_call whose aicall is a conversation (text-only, SPEC §5.1) created over RPC, one /v1/messages with
//   run_immediately, wait for the bot's message_bot_llm event, stop over RPC.
// - websocket: a call created over RPC whose media is the WebSocket of SPEC §9 (protobuf AudioRawFrame, 8 kHz
//   resampled by the daemon): 1 s of the prompt, then close, then stop over RPC.
// - injected failures: an LLM that answers HTTP 500 (the call is created over RPC with a marker message the OpenAI
//   fake recognises; the daemon must end it by itself, reason llm_error), and bad Audiosocket peers (a UUID of the
//   wrong length; a frame over AUDIOSOCKET_MAX_FRAME_BYTES after a good UUID) which the daemon must close.
//
// A lifecycle throws only on something unexpected: the daemon not closing, an RPC refused, no bot reply.

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import WebSocket from 'ws';
import { readWav } from '../src/audio/wav.js';
import { AudiosocketClient } from '../src/transports/audiosocket/client.js';
import { KIND_AUDIO_8K, KIND_UUID, encodeMessage } from '../src/transports/audiosocket/protocol.js';
import { encodeFrame } from '../src/transports/websocket/frames.js';
import { HOST_QUEUE, SHARED_QUEUE, type SoakBroker } from './soak-broker.js';

export type LifecycleKind = 'voice' | 'hangup_early' | 'text' | 'websocket' | 'fail_llm' | 'bad_peer';

/** One cycle of 20 lifecycles: the order kinds are started in (a steady, repeating mix). */
export const MIX: readonly LifecycleKind[] = [
  'voice', 'hangup_early', 'text', 'voice', 'websocket', 'hangup_early', 'voice', 'text', 'bad_peer', 'voice',
  'hangup_early', 'text', 'voice', 'websocket', 'fail_llm', 'voice', 'hangup_early', 'text', 'bad_peer', 'websocket',
];

/** The system message that makes the OpenAI fake answer HTTP 500 (see soak.ts's handler). */
export const FAIL_MARKER = 'soak: this call injects an LLM failure';

export interface LifecycleContext {
  audiosocketPort: number;
  httpPort: number;
  broker: SoakBroker;
  /** Every pipecatcall id made (for the cache cleanup). */
  ids: string[];
}

export interface LifecycleStats {
  /** Voiced bot frames received (greetings and replies). */
  botFramesVoiced: number;
}

const SILENCE = Buffer.alloc(320);
let prompt: Buffer | undefined;
/** 8 kHz s16le of a recorded prompt ("hello world", 1 s), loaded once. */
function promptPcm(): Buffer {
  if (prompt === undefined) {
    const wav = readWav(readFileSync('/usr/share/asterisk/sounds/en/hello-world.wav'));
    prompt = Buffer.from(wav.samples.buffer, wav.samples.byteOffset, wav.samples.byteLength);
  }
  return prompt;
}

let voiceAudio: Buffer | undefined;
/** 300 ms silence, the prompt (over the greeting), 1.2 s silence (the turn ends, the reply plays). */
function voicePcm(): Buffer {
  voiceAudio ??= Buffer.concat([...Array<Buffer>(15).fill(SILENCE), promptPcm(), ...Array<Buffer>(60).fill(SILENCE)]);
  return voiceAudio;
}

function isVoiced(payload: Buffer): boolean {
  for (let i = 0; i < payload.length; i += 2) if (payload.readInt16LE(i) !== 0) return true;
  return false;
}

async function closedWithin(client: AudiosocketClient, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ok = await Promise.race([
    client.closed.then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
  ]);
  clearTimeout(timer);
  if (!ok) throw new Error(`the daemon did not close the connection within ${ms} ms ${what}`);
}

async function audiosocketCall(ctx: LifecycleContext, id: string, pcm: Buffer, stats: LifecycleStats): Promise<void> {
  const client = await AudiosocketClient.connect({ host: '127.0.0.1', port: ctx.audiosocketPort, uuid: id });
  try {
    client.onMessage((msg) => {
      if (msg.kind === KIND_AUDIO_8K && isVoiced(msg.payload)) stats.botFramesVoiced++;
    });
    await client.streamPcm(pcm, KIND_AUDIO_8K);
    client.hangup();
    await closedWithin(client, 10_000, 'after the hangup');
  } finally {
    client.destroy();
  }
}

async function voice(ctx: LifecycleContext, stats: LifecycleStats): Promise<void> {
  const id = randomUUID();
  ctx.ids.push(id);
  await audiosocketCall(ctx, id, voicePcm(), stats);
}

async function hangupEarly(ctx: LifecycleContext, stats: LifecycleStats): Promise<void> {
  const id = randomUUID();
  ctx.ids.push(id);
  await audiosocketCall(ctx, id, Buffer.concat([SILENCE, SILENCE, SILENCE]), stats);
}

async function text(ctx: LifecycleContext): Promise<void> {
  const id = randomUUID();
  ctx.ids.push(id);
  await ctx.broker.ok(SHARED_QUEUE, '/v1/pipecatcalls', 'POST', { id, reference_type: 'ai_call', reference_id: randomUUID() });
  const reply = ctx.broker.waitEvent(id, 'message_bot_llm', 15_000);
  try {
    await ctx.broker.ok(HOST_QUEUE, '/v1/messages', 'POST', {
      pipecatcall_id: id,
      message_id: randomUUID(),
      message_text: 'What are your opening hours?',
      run_immediately: true,
      audio_response: false,
    });
    await reply;
  } finally {
    ctx.broker.cancelWait(id);
    await ctx.broker.ok(HOST_QUEUE, `/v1/pipecatcalls/${id}/stop`, 'POST');
  }
}

async function websocket(ctx: LifecycleContext, stats: LifecycleStats): Promise<void> {
  const id = randomUUID();
  ctx.ids.push(id);
  await ctx.broker.ok(SHARED_QUEUE, '/v1/pipecatcalls', 'POST', {
    id,
    reference_type: 'call',
    stt_type: 'deepgram',
    tts_type: 'cartesia',
    tts_voice_id: 'bench-voice',
  });
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${ctx.httpPort}/v1/pipecatcalls/${id}/ws`, { perMessageDeflate: false });
    const closed = new Promise<void>((r) => ws.once('close', () => r()));
    ws.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`WebSocket upgrade answered ${res.statusCode}`)));
      ws.once('error', reject);
    });
    ws.on('message', (data: Buffer) => {
      // Bot audio is AudioRawFrame (field 2 of Frame: tag 0x12); RTVI messages are MessageFrames.
      if (data[0] === 0x12) stats.botFramesVoiced++;
    });
    const pcm = promptPcm();
    const t0 = performance.now();
    for (let i = 0, off = 0; off < pcm.length && ws.readyState === WebSocket.OPEN; i++, off += 320) {
      const wait = t0 + i * 20 - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      ws.send(encodeFrame({ type: 'audio', id: i, name: 'soak', audio: pcm.subarray(off, off + 320), sampleRate: 8000, numChannels: 1 }));
    }
    ws.close(1000);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    ws.terminate();
  } finally {
    await ctx.broker.ok(HOST_QUEUE, `/v1/pipecatcalls/${id}/stop`, 'POST');
  }
}

async function failLlm(ctx: LifecycleContext): Promise<void> {
  const id = randomUUID();
  ctx.ids.push(id);
  await ctx.broker.ok(SHARED_QUEUE, '/v1/pipecatcalls', 'POST', {
    id,
    reference_type: 'call',
    llm_messages: [{ role: 'system', content: FAIL_MARKER }],
    stt_type: 'deepgram',
    tts_type: 'cartesia',
    tts_voice_id: 'bench-voice',
  });
  const client = await AudiosocketClient.connect({ host: '127.0.0.1', port: ctx.audiosocketPort, uuid: id });
  try {
    // Silence until the daemon ends the call (the greeting's LLM request fails).
    const stream = client.streamPcm(Buffer.concat(Array<Buffer>(500).fill(SILENCE)), KIND_AUDIO_8K);
    await closedWithin(client, 10_000, 'after the LLM failed');
    await stream;
  } finally {
    client.destroy();
  }
}

function uuidBytes(id: string): Buffer {
  return Buffer.from(id.replace(/-/g, ''), 'hex');
}

let badPeers = 0;
/** Alternately: a UUID message of 5 bytes; a good UUID then a 20,000-byte audio frame. The daemon must close. */
async function badPeer(ctx: LifecycleContext): Promise<void> {
  // A fresh UUID each time: the oversized frame then reaches a live call (a known id would be refused first).
  const id = randomUUID();
  const oversized = badPeers++ % 2 === 1;
  if (oversized) ctx.ids.push(id);
  const bytes = oversized
    ? Buffer.concat([encodeMessage(KIND_UUID, uuidBytes(id)), encodeMessage(KIND_AUDIO_8K, Buffer.alloc(20_000))])
    : encodeMessage(KIND_UUID, Buffer.from([1, 2, 3, 4, 5]));
  const socket = connect({ host: '127.0.0.1', port: ctx.audiosocketPort });
  socket.on('error', () => undefined);
  socket.on('data', () => undefined);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    socket.write(bytes);
    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([
      new Promise<boolean>((r) => socket.once('close', () => r(true))),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 10_000))),
    ]);
    clearTimeout(timer);
    if (!closed) throw new Error('the daemon did not close a bad peer within 10 s');
  } finally {
    socket.destroy();
  }
}

export function runLifecycle(kind: LifecycleKind, ctx: LifecycleContext, stats: LifecycleStats): Promise<void> {
  switch (kind) {
    case 'voice':
      return voice(ctx, stats);
    case 'hangup_early':
      return hangupEarly(ctx, stats);
    case 'text':
      return text(ctx);
    case 'websocket':
      return websocket(ctx, stats);
    case 'fail_llm':
      return failLlm(ctx);
    case 'bad_peer':
      return badPeer(ctx);
  }
}
