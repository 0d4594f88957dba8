// The Asterisk side of the calls benchmark, in a process of its own so that the provider fakes (in the bench
// process) never delay a receive timestamp: N Audiosocket calls over real TCP, each streaming the call script on
// its own 20 ms grid, recording when each of its frames was sent and when every frame of the daemon arrived.
// Driven over IPC by calls.ts: init → start (one call at a time) → rampDone → stop.
//
// Like the channels of a real Asterisk, calls are not in phase: call k's grid is offset by one of ten phases 2 ms
// apart, picked by a hash of k (not k mod 10: the daemon's pacing thread also spreads calls over phases in the
// order they connect, and the two would line up call for call, turning a chance offset into a systematic one), all
// served by one drift-corrected 2 ms timer. (Every call sending in the same instant would
// hand the daemon 100 frames at once, a burst no real PBX produces.)

import { performance } from 'node:perf_hooks';
import { AudiosocketClient } from '../src/transports/audiosocket/client.js';
import { KIND_AUDIO_8K, KIND_HANGUP, encodeMessage, isAudioKind } from '../src/transports/audiosocket/protocol.js';
import { buildScript } from './script.js';
import { summarize, type Summary } from './lib/stats.js';

export type ToCaller =
  | { type: 'init'; port: number; scriptSeconds: number; promptEnds: Array<{ frame: number; turn: number }> }
  | { type: 'start'; index: number; uuid: string }
  | { type: 'rampDone' }
  | { type: 'stop' };

export type FromCaller =
  | { type: 'ready' }
  | { type: 'started'; index: number }
  | { type: 'failed'; index: number; error: string }
  | { type: 'promptEnd'; index: number; turn: number }
  /** The daemon closed the call (e.g. refused by admission control). */
  | { type: 'closed'; index: number }
  | { type: 'result'; result: CallerResult };

export interface CallRecord {
  index: number;
  /** performance.now() at which script frame i was written (this process's clock). */
  sentAt: Float64Array;
  /** Arrival time of each bot frame that follows a silent one: a reply starting. */
  replyStarts: Float64Array;
  framesReceived: number;
  closedEarly: boolean;
}

export interface CallerResult {
  calls: CallRecord[];
  rampDoneAt: number;
  stoppedAt: number;
  framesSent: number;
  framesReceived: number;
  /** Slots with no frame at the client: (last − first arrival) / 20 ms + 1 − frames received, summed. */
  framesMissing: number;
  /** Lateness per frame (ms) against each call's ideal 20 ms grid: every frame / frames after the ramp. */
  lateness: { all: Summary; steady: Summary };
  /** The same anchored at each call's first frame (src/transports/audiosocket/reply-recorder.ts's definition). */
  latenessFirstFrameAnchor: { all: Summary; steady: Summary };
  /** Frames later than 20 ms against their call's grid (every frame). */
  framesOver20ms: number;
  /** How late the caller's own send clock ran (ms): not the daemon's doing, but reported. */
  sendClockLateness: Summary;
  /** CPU seconds this process used from rampDone to stop. */
  cpuSecondsSteady: number;
}

interface CallState {
  index: number;
  client: AudiosocketClient;
  next: number;
  /** Which 2 ms sub-slot of the 20 ms grid the call sends in. */
  phase: number;
  sentAt: number[];
  arrivals: number[];
  replyStarts: number[];
  voicedBefore: boolean;
  closedByUs: boolean;
  closedEarly: boolean;
}

const FRAME_MS = 20;
const PHASES = 10;
const TICK_MS = FRAME_MS / PHASES;

/** A fixed pseudo-random phase for call `index` (an integer hash), the same in every run. */
function phaseOf(index: number): number {
  let h = Math.imul(index + 1, 0x9e3779b1) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) >>> 0;
  return ((h ^ (h >>> 13)) >>> 0) % PHASES;
}
const EARLY_MS = 0.3;

function isVoiced(payload: Buffer): boolean {
  for (let i = 0; i < payload.length; i++) if (payload[i] !== 0) return true;
  return false;
}

function send(msg: FromCaller): void {
  process.send?.(msg);
}

let port = 0;
let frames: Buffer[] = [];
const silence: Buffer = encodeMessage(KIND_AUDIO_8K, Buffer.alloc(320));
let promptEnds = new Map<number, number>();
const calls: CallState[] = [];
let rampDoneAt = Number.POSITIVE_INFINITY;
let cpuAtRampDone: NodeJS.CpuUsage | undefined;
let timer: NodeJS.Timeout | undefined;
let clockStart = 0;
let slot = 0;
const sendLateness: number[] = [];

function tick(): void {
  const now = performance.now();
  slot++;
  sendLateness.push(now - (clockStart + slot * TICK_MS));
  const phase = slot % PHASES;
  for (const c of calls) {
    if (c.phase !== phase || c.client.isClosed) continue;
    const f = c.next++;
    c.client.sendRaw(frames[f] ?? silence);
    c.sentAt.push(now);
    const turn = promptEnds.get(f);
    if (turn !== undefined) send({ type: 'promptEnd', index: c.index, turn });
  }
  const deadline = clockStart + (slot + 1) * TICK_MS;
  timer = setTimeout(tick, Math.max(0, deadline - performance.now() - EARLY_MS));
}

async function startCall(index: number, uuid: string): Promise<void> {
  try {
    const client = await AudiosocketClient.connect({ host: '127.0.0.1', port, uuid });
    const state: CallState = {
      index,
      client,
      next: 0,
      phase: phaseOf(index),
      sentAt: [],
      arrivals: [],
      replyStarts: [],
      voicedBefore: false,
      closedByUs: false,
      closedEarly: false,
    };
    client.onMessage((msg, at) => {
      if (msg.kind === KIND_HANGUP || !isAudioKind(msg.kind)) return;
      state.arrivals.push(at);
      const voiced = isVoiced(msg.payload);
      if (voiced && !state.voicedBefore) state.replyStarts.push(at);
      state.voicedBefore = voiced;
    });
    void client.closed.then(() => {
      if (state.closedByUs) return;
      state.closedEarly = true;
      send({ type: 'closed', index });
    });
    calls.push(state);
    send({ type: 'started', index });
  } catch (err) {
    send({ type: 'failed', index, error: (err as Error).message });
  }
}

function lateness(arrivals: number[], minAnchor: boolean): number[] {
  if (arrivals.length === 0) return [];
  // The ideal grid of the call: anchored so that no frame is early (min anchor), or at the first frame.
  let anchor = arrivals[0] as number;
  if (minAnchor) for (let i = 0; i < arrivals.length; i++) anchor = Math.min(anchor, (arrivals[i] as number) - i * FRAME_MS);
  return arrivals.map((a, i) => a - (anchor + i * FRAME_MS));
}

async function stop(): Promise<void> {
  const stoppedAt = performance.now();
  const cpu = cpuAtRampDone === undefined ? undefined : process.cpuUsage(cpuAtRampDone);
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  for (const c of calls) {
    c.closedByUs = true;
    c.client.hangup();
  }
  await Promise.race([Promise.all(calls.map((c) => c.client.closed)), new Promise((r) => setTimeout(r, 3000))]);
  for (const c of calls) c.client.destroy();

  const all: number[] = [];
  const steady: number[] = [];
  const allFirst: number[] = [];
  const steadyFirst: number[] = [];
  let missing = 0;
  let received = 0;
  let sent = 0;
  let over20 = 0;
  for (const c of calls) {
    sent += c.next;
    const n = c.arrivals.length;
    received += n;
    if (n > 0) missing += Math.max(0, Math.round(((c.arrivals[n - 1] as number) - (c.arrivals[0] as number)) / FRAME_MS) + 1 - n);
    const l = lateness(c.arrivals, true);
    const lf = lateness(c.arrivals, false);
    for (let i = 0; i < n; i++) {
      const v = l[i] as number;
      all.push(v);
      allFirst.push(lf[i] as number);
      if (v > FRAME_MS) over20++;
      if ((c.arrivals[i] as number) >= rampDoneAt + 1000) {
        steady.push(v);
        steadyFirst.push(lf[i] as number);
      }
    }
  }
  send({
    type: 'result',
    result: {
      calls: calls.map((c) => ({
        index: c.index,
        sentAt: Float64Array.from(c.sentAt),
        replyStarts: Float64Array.from(c.replyStarts),
        framesReceived: c.arrivals.length,
        closedEarly: c.closedEarly,
      })),
      rampDoneAt,
      stoppedAt,
      framesSent: sent,
      framesReceived: received,
      framesMissing: missing,
      lateness: { all: summarize(all), steady: summarize(steady) },
      latenessFirstFrameAnchor: { all: summarize(allFirst), steady: summarize(steadyFirst) },
      framesOver20ms: over20,
      sendClockLateness: summarize(sendLateness),
      cpuSecondsSteady: cpu === undefined ? 0 : (cpu.user + cpu.system) / 1e6,
    },
  });
  setTimeout(() => process.exit(0), 200);
}

process.on('message', (msg: ToCaller) => {
  switch (msg.type) {
    case 'init':
      port = msg.port;
      frames = buildScript(msg.scriptSeconds).frames.map((f) => encodeMessage(KIND_AUDIO_8K, f));
      promptEnds = new Map(msg.promptEnds.map((p) => [p.frame, p.turn]));
      clockStart = performance.now();
      slot = 0;
      timer = setTimeout(tick, TICK_MS - EARLY_MS);
      send({ type: 'ready' });
      return;
    case 'start':
      void startCall(msg.index, msg.uuid);
      return;
    case 'rampDone':
      rampDoneAt = performance.now();
      cpuAtRampDone = process.cpuUsage();
      return;
    case 'stop':
      void stop();
      return;
  }
});
