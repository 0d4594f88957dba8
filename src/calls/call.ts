// One live call on this instance: its row, its session state, its media and its AbortController. Only the
// CallManager creates and terminates calls; everything a call opens is released in its close().

import type { Logger } from '../log.js';
import type { VoicePipeline } from '../pipeline/voice-pipeline.js';
import type { CallListener } from './call-observer.js';
import type { Pipecatcall } from '../model/pipecatcall.js';
import type { VadConfig } from './create-request.js';

export type TerminateReason = 'hangup' | 'stop' | 'idle' | 'shutdown' | 'stt_error' | 'tts_error' | 'llm_error' | 'error';
export const TERMINATE_REASONS: readonly TerminateReason[] = [
  'hangup',
  'stop',
  'idle',
  'shutdown',
  'stt_error',
  'tts_error',
  'llm_error',
  'error',
];

export type CallTransport = 'audiosocket' | 'websocket' | 'none';

/** What the call's ai_call reference resolved to at ai-manager (SPEC §5.1). */
export interface AicallInfo {
  aicallId: string;
  referenceType: string;
  referenceId: string;
  aiId: string;
  /** The LLM key from ai-manager; '' → the environment key. Never logged. */
  engineKey: string;
}

/** The media side of a call (Audiosocket now; WebSocket later). */
export interface CallMedia {
  readonly transport: CallTransport;
  /** Ends the media: `handBack` sends the transport's hangup (0x00) first so the dialplan continues. */
  close(handBack: boolean): void;
}

/** A user message injected by POST /v1/messages, waiting for the pipeline. */
export interface InjectedMessage {
  text: string;
  runImmediately: boolean;
  audioResponse: boolean;
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
  /** Aborted when the call terminates: every provider request and stream of the call listens to it. */
  readonly abort = new AbortController();
  media: CallMedia | null = null;
  /** Set once terminate() starts; the promise every caller of terminate() shares. */
  terminating: Promise<void> | null = null;
  terminateReason: TerminateReason | null = null;
  /** The pipeline runs: media attached, or a text-only session started. */
  sessionStarted = false;
  /** start() was called on the PipelineStarter (the pipeline may still be opening its providers). */
  pipelineStarted = false;
  /** The pipeline being built; settles (never rejects) when it is running or has given up. */
  pipelineBuild: Promise<void> | null = null;
  /** The voice pipeline, once started (at the first caller audio, or at once for text-only sessions). */
  pipeline: VoicePipeline | null = null;
  /** Live followers of the call (WebSocket monitors). */
  readonly listeners = new Set<CallListener>();
  /** The latest latency figures of the call, in seconds. */
  readonly latency: Record<string, number> = {};
  /** Messages injected before a pipeline could take them. Bounded: the oldest is dropped past the limit. */
  readonly pendingMessages: InjectedMessage[] = [];
  readonly createdAt = Date.now();
  private lastActivity = performance.now();
  private idleTimer: NodeJS.Timeout | null = null;

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
    if (this.idleTimer !== null) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
  }

  injectMessage(message: InjectedMessage): void {
    if (this.pipeline !== null) {
      this.pipeline.injectMessage(message.text, message.runImmediately, message.audioResponse);
      return;
    }
    if (this.pendingMessages.length >= 100) this.pendingMessages.shift();
    this.pendingMessages.push(message);
  }
}
