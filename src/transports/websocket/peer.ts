// One WebSocket client of a call: encodes frames to it (bot audio, RTVI notices) and keeps a slow client from growing
// memory: frames to a congested socket are dropped and counted, and one that stays congested is cut off.

import type { WebSocket } from 'ws';
import type { BotAudioChannel } from './media.js';
import type { CallListener } from '../../calls/call-observer.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { PIPELINE_RATE } from '../../pipeline/voice-pipeline.js';
import { encodeFrame } from './frames.js';
import { rtviError, rtviMessage } from './rtvi.js';

/** The part of a `ws` WebSocket the peer uses (a fake in unit tests). */
export type PeerSocket = Pick<WebSocket, 'send' | 'close' | 'terminate' | 'bufferedAmount' | 'readyState'>;

export interface WsPeerOptions {
  /**
   * Bytes queued for the socket above which frames are dropped: ≈2 s of 16 kHz bot audio. Enough for a client on
   * a jittery network, small enough that 100 stuck clients cost a few MB.
   */
  highWaterBytes?: number;
  /** A socket congested this long without a break is closed: its client is not keeping up at all. */
  maxCongestedMs?: number;
  now?: () => number;
}

const OPEN = 1;
/** RFC 6455 1008 policy violation: the client did not read its frames. */
export const CLOSE_TOO_SLOW = 1008;

export class WsPeer implements BotAudioChannel, CallListener {
  private readonly highWater: number;
  private readonly maxCongestedMs: number;
  private readonly now: () => number;
  private congestedSince: number | null = null;
  private audioId = 0;
  private droppedFrames = 0;
  private closed = false;

  constructor(
    private readonly ws: PeerSocket,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    options: WsPeerOptions = {},
  ) {
    this.highWater = options.highWaterBytes ?? 64 * 1024;
    this.maxCongestedMs = options.maxCongestedMs ?? 5000;
    this.now = options.now ?? (() => performance.now());
  }

  /** Frames dropped because the socket was congested. */
  get dropped(): number {
    return this.droppedFrames;
  }

  get isClosed(): boolean {
    return this.closed || this.ws.readyState !== OPEN;
  }

  sendAudio(pcm: Buffer): void {
    this.send(
      encodeFrame({ type: 'audio', id: ++this.audioId, name: '', audio: pcm, sampleRate: PIPELINE_RATE, numChannels: 1 }),
    );
  }

  /** Sends one RTVI message (its JSON) as a `message` frame. */
  sendMessage(json: string): void {
    this.send(encodeFrame({ type: 'message', data: json }));
  }

  sendError(message: string): void {
    this.sendMessage(rtviError(message));
  }

  /** A call notice (SPEC §9 list): never throws, the call observer notifies every listener in a loop. */
  notice(type: string, data?: Record<string, unknown>): void {
    try {
      this.sendMessage(rtviMessage(type, data));
    } catch (err) {
      this.log.warn({ err }, 'could not send a notice to a WebSocket client');
    }
  }

  /** Closes the connection normally (queued frames are still delivered). Idempotent. */
  close(code = 1000, reason = ''): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.close(code, reason);
  }

  private send(bytes: Uint8Array): void {
    if (this.isClosed) return;
    if (this.ws.bufferedAmount > this.highWater) {
      this.droppedFrames++;
      this.metrics.droppedFramesTotal.inc();
      const now = this.now();
      this.congestedSince ??= now;
      if (now - this.congestedSince >= this.maxCongestedMs) {
        this.log.warn({ buffered_bytes: this.ws.bufferedAmount, dropped_frames: this.droppedFrames }, 'WebSocket client too slow; closing it');
        this.closed = true;
        // Not close(): its closing handshake would queue behind the data the client is not reading.
        this.ws.terminate();
      }
      return;
    }
    this.congestedSince = null;
    this.ws.send(bytes, { binary: true });
  }
}
