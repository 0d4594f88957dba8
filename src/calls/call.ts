// One live call on this instance: its row, its session state, its media, its pipeline and its AbortController.
// Only the CallManager creates and terminates calls; transports reach the pipeline through pushAudio/pushDtmf,
// and close() releases everything the call holds, in order.

import type { Logger } from '../log.js';
import type { Pipecatcall } from '../model/pipecatcall.js';
import type { TurnRecord } from '../pipeline/turn-record.js';
import type { VoicePipeline } from '../pipeline/voice-pipeline.js';
import type { VadConfig } from './create-request.js';
import type { CallListener, CallMedia, CallTransport } from './ports.js';

export type { CallMedia, CallTransport };

export type TerminateReason = 'hangup' | 'stop' | 'idle' | 'no_media' | 'shutdown' | 'stt_error' | 'tts_error' | 'llm_error' | 'error';
export const TERMINATE_REASONS: readonly TerminateReason[] = [
  'hangup',
  'stop',
  'idle',
  'no_media',
  'shutdown',
  'stt_error',
  'tts_error',
  'llm_error',
  'error',
];

/** What the call's ai_call reference resolved to at ai-manager (SPEC §5.1). */
export interface AicallInfo {
  aicallId: string;
  referenceType: string;
  referenceId: string;
  aiId: string;
}

/** A user message injected by POST /v1/messages, waiting for the pipeline. */
export interface InjectedMessage {
  text: string;
  runImmediately: boolean;
  audioResponse: boolean;
}

/** Builds the call's pipeline; resolves null when it could not (the builder has already ended the call). */
export type PipelineBuilder = (call: Call, signal: AbortSignal) => Promise<VoicePipeline | null>;

const MAX_PENDING_MESSAGES = 100;
/** Barge-ins kept per call for the console (the oldest go first). */
export const MAX_INTERRUPTIONS = 100;

/** The latest provider failure of a call, its message already redacted (errors.ts messageOf). */
export interface ProviderFailure {
  stage: 'stt' | 'llm' | 'tts';
  provider: string;
  message: string;
  /** Epoch milliseconds. */
  at: number;
}

/** A barge-in on the bot: `heard` is what of the interrupted reply had played (confirmed ones only). */
export interface Interruption {
  kind: 'confirmed' | 'false';
  /** Epoch milliseconds. */
  at: number;
  heard: string;
}

/** Level of 16-bit PCM as RMS dBFS (-96 for digital silence), or null without audio. */
export function levelDbfs(pcm: Buffer | null, offset = 0): number | null {
  if (pcm === null) return null;
  const n = (pcm.length - offset) >> 1;
  if (n <= 0) return null;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const v = pcm.readInt16LE(offset + i * 2);
    sum += v * v;
  }
  const rms = Math.sqrt(sum / n);
  return rms < 1 ? -96 : Math.round(20 * Math.log10(rms / 32768) * 10) / 10;
}

export class Call {
  readonly id: string;
  row: Pipecatcall;
  readonly log: Logger;
  readonly vadConfig: VadConfig;
  /** Filled in by create once ai-manager answered (ai_call references only). */
  aicall: AicallInfo | null;
  /** The call whose external media call-manager made for us: deleted at termination. */
  externalMediaCallId: string | null = null;
  /**
   * Aborted when termination starts: sibling requests and followers (monitors) of the call listen to it. The
   * pipeline has its own controller, aborted by its close() in the teardown order.
   */
  readonly abort = new AbortController();
  media: CallMedia | null = null;
  /** Set once terminate() starts; the promise every caller of terminate() shares. */
  terminating: Promise<void> | null = null;
  terminateReason: TerminateReason | null = null;
  /** The session runs: media attached, or a text-only session started. */
  sessionStarted = false;
  /** Live followers of the call (WebSocket monitors). */
  readonly listeners = new Set<CallListener>();
  /** The latest latency figures of the call, in seconds. */
  readonly latency: Record<string, number> = {};
  readonly createdAt = Date.now();
  /** The latest provider error (shown by the console; bounded: one per call). */
  providerFailure: ProviderFailure | null = null;
  /** Barge-ins on the bot, oldest first (bounded). */
  readonly interruptions: Interruption[] = [];
  /** The turns of the pipeline, kept when it closes so the console can still show an ended call's timeline. */
  private finalTurns: TurnRecord[] = [];
  /**
   * The caller's latest audio, copied (the pipeline may reuse or hand off the frame's memory): its level is
   * computed only when the console asks. One small copy per frame; no allocation after the first.
   */
  private lastInput: Buffer | null = null;
  private lastInputBytes = 0;
  /** The caller's audio rate, fixed by its first audio; null before. */
  private rate: number | null = null;
  private pipeline: VoicePipeline | null = null;
  private pipelineBuild: Promise<void> | null = null;
  /** Cancels a pipeline still being built. */
  private readonly buildAbort = new AbortController();
  /** Messages injected before a pipeline could take them. Bounded: the oldest is dropped past the limit. */
  private readonly pendingMessages: InjectedMessage[] = [];
  private lastActivity = performance.now();
  private idleTimer: NodeJS.Timeout | null = null;
  private mediaTimer: NodeJS.Timeout | null = null;

  constructor(init: { row: Pipecatcall; log: Logger; vadConfig: VadConfig; aicall: AicallInfo | null }) {
    this.id = init.row.id;
    this.row = init.row;
    this.log = init.log;
    this.vadConfig = init.vadConfig;
    this.aicall = init.aicall;
  }

  get transport(): CallTransport {
    return this.media?.transport ?? 'none';
  }

  get isTerminating(): boolean {
    return this.terminating !== null;
  }

  /** The pipeline is built and running. */
  get pipelineRunning(): boolean {
    return this.pipeline !== null;
  }

  /** The caller's audio rate, once its first audio arrived. */
  get inputRate(): number | null {
    return this.rate;
  }

  /** The call's turns so far (or, once its pipeline closed, its last ones). Copies. */
  turns(): TurnRecord[] {
    return this.pipeline?.turns() ?? this.finalTurns.map((r) => ({ ...r }));
  }

  /** The latest turn (a copy), or null before the first: the console polls it instead of the whole list. */
  latestTurn(): TurnRecord | null {
    if (this.pipeline !== null) return this.pipeline.latestTurn();
    const last = this.finalTurns[this.finalTurns.length - 1];
    return last === undefined ? null : { ...last };
  }

  /** Caller and bot levels (RMS dBFS of the latest 20 ms each way; null when none), computed on demand. */
  levels(): { caller: number | null; bot: number | null } {
    const bot = this.media?.sink.currentBotFrame?.() ?? null;
    return { caller: levelDbfs(this.lastInput?.subarray(0, this.lastInputBytes) ?? null), bot: bot === null ? null : levelDbfs(bot.pcm, bot.offset) };
  }

  recordInterruption(i: Interruption): void {
    this.interruptions.push(i);
    if (this.interruptions.length > MAX_INTERRUPTIONS) this.interruptions.shift();
  }

  /** User or bot activity: pushes the idle deadline back. Cheap enough to call per event (no timer churn). */
  touch(): void {
    this.lastActivity = performance.now();
  }

  /**
   * Starts the idle watchdog: `onIdle` runs once when nothing happened for `idleMs`. One timer per call that
   * re-arms itself for the remaining time, instead of being reset on every activity.
   */
  startIdleTimer(idleMs: number, onIdle: () => void): void {
    this.stopIdleTimer();
    const check = (): void => {
      const remaining = this.lastActivity + idleMs - performance.now();
      if (remaining <= 0) {
        this.idleTimer = null;
        onIdle();
        return;
      }
      this.idleTimer = setTimeout(check, Math.ceil(remaining));
    };
    this.idleTimer = setTimeout(check, idleMs);
  }

  stopIdleTimer(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  /** A call waiting for its media: `onTimeout` runs once if no media is attached within `ms`. */
  startMediaTimer(ms: number, onTimeout: () => void): void {
    this.stopMediaTimer();
    this.mediaTimer = setTimeout(() => {
      this.mediaTimer = null;
      onTimeout();
    }, ms);
  }

  stopMediaTimer(): void {
    if (this.mediaTimer !== null) clearTimeout(this.mediaTimer);
    this.mediaTimer = null;
  }

  /** Builds and starts the pipeline, once; messages injected meanwhile are delivered when it runs. */
  startPipeline(build: PipelineBuilder): void {
    if (this.pipelineBuild !== null || this.isTerminating) return;
    this.pipelineBuild = (async () => {
      const pipeline = await build(this, this.buildAbort.signal);
      if (pipeline === null) return;
      if (this.buildAbort.signal.aborted) {
        await pipeline.close();
        return;
      }
      this.pipeline = pipeline;
      if (this.rate !== null) pipeline.setInputRate(this.rate);
      pipeline.start();
      for (const m of this.pendingMessages.splice(0)) pipeline.injectMessage(m.text, m.runImmediately, m.audioResponse);
    })().catch((err: unknown) => {
      this.log.error({ err }, 'pipeline start failed');
    });
  }

  /**
   * Caller audio at `rate` (s16le mono). The first audio fixes the call's rate: the pipeline's input follows it,
   * and so does the output when the transport answers in the caller's kind (SPEC §2.2). Audio before the pipeline
   * runs is dropped (the providers are still opening).
   */
  pushAudio(pcm: Buffer, rate: number): void {
    if (this.rate === null) {
      this.rate = rate;
      this.onFirstAudio(rate);
    } else if (rate !== this.rate) {
      return;
    }
    if (this.lastInput === null || this.lastInput.length < pcm.length) this.lastInput = Buffer.alloc(Math.max(pcm.length, 640));
    this.lastInputBytes = pcm.copy(this.lastInput);
    this.pipeline?.pushAudio(pcm);
  }

  /** A DTMF digit that is a user turn (SPEC §3.6). */
  pushDtmf(digit: string): void {
    this.touch();
    this.pipeline?.pushDtmf(digit);
  }

  injectMessage(message: InjectedMessage): void {
    if (this.pipeline !== null) {
      this.pipeline.injectMessage(message.text, message.runImmediately, message.audioResponse);
      return;
    }
    if (this.pendingMessages.length >= MAX_PENDING_MESSAGES) this.pendingMessages.shift();
    this.pendingMessages.push(message);
  }

  /**
   * The call's own teardown, in order (SPEC §3.8): timers; the pipeline (a build in progress is cancelled, a
   * running one aborts its providers and flushes its final events); then the media (off the clock, 0x00 to
   * Asterisk, socket closed). Idempotent.
   */
  async close(): Promise<void> {
    this.stopIdleTimer();
    this.stopMediaTimer();
    this.abort.abort(new Error(`call terminated: ${this.terminateReason ?? 'closed'}`));
    this.buildAbort.abort();
    try {
      await this.pipelineBuild;
      const p = this.pipeline;
      this.pipeline = null;
      if (p !== null) this.finalTurns = p.turns();
      await p?.close();
      if (p !== null) this.finalTurns = p.turns();
    } catch (err) {
      this.log.warn({ err }, 'pipeline teardown failed');
    }
    this.pendingMessages.length = 0;
    this.lastInput = null;
    this.media?.close(true);
  }

  private onFirstAudio(rate: number): void {
    if (this.pipeline !== null) {
      this.pipeline.setInputRate(rate);
      return;
    }
    // No pipeline yet, so nothing is queued: the output can follow at once; a pipeline built later reads the
    // sink's rate, and setInputRate() after its build aligns anything it prepared for the old one.
    const sink = this.media?.sink;
    if (sink?.changeRate !== undefined && sink.sampleRate !== rate && sink.queuedFrames === 0) {
      sink.changeRate(emptyQueueConverter(sink.sampleRate, rate));
    }
  }
}

/** A converter for a rate change with nothing queued: there is nothing to convert. */
function emptyQueueConverter(fromRate: number, toRate: number): {
  fromRate: number;
  toRate: number;
  process(x: Int16Array): Int16Array;
  flush(): Int16Array;
  close(): void;
} {
  return {
    fromRate,
    toRate,
    process: () => new Int16Array(0),
    flush: () => new Int16Array(0),
    close: () => undefined,
  };
}
