// One Asterisk call on an Audiosocket TCP connection after its UUID handshake: typed handlers for audio, DTMF and
// close, and a write path for pre-encoded frames that drops instead of buffering without bound.

import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Counter } from 'prom-client';
import { ProtocolError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import {
  KIND_DTMF,
  KIND_ERROR,
  KIND_HANGUP,
  KIND_UUID,
  encodeMessage,
  isAudioKind,
  type AudiosocketMessage,
} from './protocol.js';

export type CloseReason = 'hangup' | 'eof' | 'error' | 'protocol' | 'local';

export interface ConnectionContext {
  metrics: Metrics;
  log: Logger;
}

/** Frame counts are kept locally and flushed to the counter every this many frames (and on close). */
const FLUSH_EVERY = 50;
/** Write bound: ~1 s of audio (50 frames) or 64 KiB, whichever is larger. Above it, frames are dropped. */
const FRAMES_BUFFERED_MAX = 50;
const MIN_WRITE_BUFFER_BYTES = 64 * 1024;
/** A peer whose socket stays congested this long is not reading: close it before memory grows. */
const CONGESTED_MAX_MS = 2000;
/** After sendHangup(), how long a graceful end may take before the socket is destroyed. */
const HANGUP_LINGER_MS = 2000;

const HANGUP = encodeMessage(KIND_HANGUP);
const noop = (): void => {};

export class AudiosocketConnection {
  /** The pipecatcall id sent by Asterisk in its first message. */
  readonly uuid: string;
  /** `address:port` of the peer, for logs. */
  readonly remoteAddress: string;
  private readonly socket: Socket;
  private readonly log: Logger;
  private readonly framesInCounter: Counter.Internal;
  private readonly framesOutCounter: Counter.Internal;
  private readonly droppedCounter: Counter;
  private readonly protocolErrors: Counter<'kind'>;
  private kind: number | undefined;
  private audioHandler: (pcm: Buffer, kind: number) => void = noop;
  private dtmfHandler: (digit: string) => void = noop;
  private closeHandler: ((reason: CloseReason) => void) | undefined;
  private reason: CloseReason | undefined;
  private closeDelivered = false;
  private framesIn = 0;
  private framesOut = 0;
  private congestedSince = -1;
  private lingerTimer: NodeJS.Timeout | undefined;

  /** Created by AudiosocketServer once the UUID is read; not meant to be constructed elsewhere. */
  constructor(socket: Socket, uuid: string, remoteAddress: string, context: ConnectionContext) {
    this.socket = socket;
    this.uuid = uuid;
    this.remoteAddress = remoteAddress;
    this.log = context.log;
    this.framesInCounter = context.metrics.audiosocketFramesTotal.labels('in');
    this.framesOutCounter = context.metrics.audiosocketFramesTotal.labels('out');
    this.droppedCounter = context.metrics.droppedFramesTotal;
    this.protocolErrors = context.metrics.audiosocketProtocolErrorsTotal;
  }

  /** The audio kind of the first audio message: the call's wire rate, and the kind to answer in (SPEC §2.2). */
  get wireKind(): number | undefined {
    return this.kind;
  }

  /** Why the connection closed, once it has. */
  get closeReason(): CloseReason | undefined {
    return this.reason;
  }

  get closed(): boolean {
    return this.reason !== undefined;
  }

  /**
   * The socket's descriptor, for a pacing thread that writes to it directly (audio/pacer), or null where the
   * platform gives none.
   */
  get descriptor(): number | null {
    const fd = (this.socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
    return typeof fd === 'number' && fd >= 0 && !this.socket.destroyed ? fd : null;
  }

  /**
   * Runs `hook` synchronously before the socket's descriptor closes, whatever closes it: our own destroy, Node's
   * on a read error, the server's close. A pacing thread that writes to the descriptor is stopped there, so a
   * descriptor number the kernel may reuse is never written to. Once per connection.
   */
  beforeDescriptorCloses(hook: () => void): void {
    const socket = this.socket;
    const destroy = socket._destroy.bind(socket);
    let ran = false;
    socket._destroy = (err: Error | null, cb: (err?: Error | null) => void): void => {
      if (!ran) {
        ran = true;
        hook();
      }
      destroy(err, cb);
    };
  }

  /** Frames written for us by a pacing thread: counted with ours. */
  countFramesOut(frames: number): void {
    this.framesOut += frames;
    if (this.framesOut >= FLUSH_EVERY) this.flushOut();
  }

  /**
   * A pacing thread could not write for `blockedMs` (dropping `droppedFrames`): counted as dropped, and a peer
   * that stays blocked past the congestion limit is closed, as on our own write path.
   */
  reportBlocked(droppedFrames: number, blockedMs: number): void {
    if (droppedFrames > 0) this.droppedCounter.inc(droppedFrames);
    if (blockedMs > CONGESTED_MAX_MS) {
      this.fail(new ProtocolError('peer_not_reading', `peer has not read for ${Math.round(blockedMs)} ms`));
    }
  }

  /** Bytes waiting in Node's socket buffer (bounded by the write path). */
  get writableLength(): number {
    return this.socket.writableLength;
  }

  /** Sets the audio handler. `pcm` may be a view into a socket read: copy it before mutating. */
  onAudio(cb: (pcm: Buffer, kind: number) => void): void {
    this.audioHandler = cb;
  }

  onDtmf(cb: (digit: string) => void): void {
    this.dtmfHandler = cb;
  }

  /** Sets the close handler; fired exactly once, immediately if the connection has already closed. */
  onClose(cb: (reason: CloseReason) => void): void {
    this.closeHandler = cb;
    if (this.reason !== undefined) this.deliverClose();
  }

  /**
   * Writes one pre-encoded message in ONE socket.write (Asterisk hangs up if a payload trails its header by
   * 5 ms). Returns false when closed or when the frame was dropped because the peer is not keeping up; `always`
   * writes it whatever the backlog (the tail of a frame a pacing thread began must not be dropped).
   */
  writeFrame(encoded: Buffer, always = false): boolean {
    const socket = this.socket;
    if (this.reason !== undefined || socket.destroyed) return false;
    if (!always && socket.writableLength > Math.max(MIN_WRITE_BUFFER_BYTES, encoded.length * FRAMES_BUFFERED_MAX)) {
      return this.congested();
    }
    this.congestedSince = -1;
    socket.write(encoded);
    if (++this.framesOut >= FLUSH_EVERY) this.flushOut();
    return true;
  }

  /** Sends hangup (0x00) and ends gracefully: AudioSocket() returns and the dialplan continues. Idempotent. */
  sendHangup(): void {
    if (this.reason !== undefined) return;
    if (this.socket.destroyed) {
      this.finish('local');
      return;
    }
    this.socket.write(HANGUP);
    this.socket.end();
    // A peer that never reads would keep a graceful end pending forever.
    this.lingerTimer = setTimeout(() => this.socket.destroy(), HANGUP_LINGER_MS);
    this.finish('local');
  }

  /** Destroys the socket at once. Idempotent. */
  close(): void {
    this.socket.destroy();
    this.finish('local');
  }

  /** @internal The server's decoder feeds every message after the UUID here. */
  handleMessage(msg: AudiosocketMessage): void {
    if (this.reason !== undefined) return;
    const kind = msg.kind;
    if (isAudioKind(kind)) {
      if (msg.payload.length === 0) return;
      if (kind !== this.kind) {
        if (this.kind !== undefined) {
          this.fail(new ProtocolError('rate_change', `audio kind changed from 0x${this.kind.toString(16)} to 0x${kind.toString(16)}`));
          return;
        }
        this.kind = kind;
      }
      if (++this.framesIn >= FLUSH_EVERY) this.flushIn();
      try {
        this.audioHandler(msg.payload, kind);
      } catch (err) {
        this.handlerFailed(err);
      }
    } else if (kind === KIND_DTMF) {
      try {
        this.dtmfHandler(String.fromCharCode(msg.payload[0] ?? 0));
      } catch (err) {
        this.handlerFailed(err);
      }
    } else if (kind === KIND_HANGUP) {
      this.socket.destroy();
      this.finish('hangup');
    } else if (kind === KIND_UUID) {
      this.fail(new ProtocolError('duplicate_uuid', 'a second UUID message'));
    } else if (kind === KIND_ERROR) {
      this.log.warn(
        { pipecatcall_id: this.uuid, remote: this.remoteAddress, code: msg.payload[0] },
        'audiosocket peer sent an error message; closing',
      );
      this.socket.destroy();
      this.finish('error');
    }
  }

  /** @internal Closes for a protocol violation: counted by kind, logged once. */
  fail(err: ProtocolError): void {
    if (this.reason !== undefined) return;
    this.protocolErrors.inc({ kind: err.kind });
    this.log.warn(
      { pipecatcall_id: this.uuid, remote: this.remoteAddress, kind: err.kind },
      `closing audiosocket connection: ${err.message}`,
    );
    this.socket.destroy();
    this.finish('protocol');
  }

  /** @internal The peer closed its side: how Asterisk hangs up (no 0x00). */
  handleEnd(): void {
    // Destroy rather than wait for our side to drain: a half-closed peer need not read any more.
    this.socket.destroy();
    this.finish('eof');
  }

  /** @internal A socket error (ECONNRESET, EPIPE…); the socket is already being destroyed. */
  handleError(err: Error): void {
    if (this.reason === undefined) {
      this.log.debug({ pipecatcall_id: this.uuid, remote: this.remoteAddress, err: err.message }, 'audiosocket error');
    }
    this.finish('error');
  }

  /** @internal The socket is gone. */
  handleClose(hadError: boolean): void {
    if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    this.finish(hadError ? 'error' : 'eof');
  }

  private congested(): boolean {
    this.droppedCounter.inc();
    const now = performance.now();
    if (this.congestedSince < 0) this.congestedSince = now;
    else if (now - this.congestedSince > CONGESTED_MAX_MS) {
      this.fail(
        new ProtocolError('peer_not_reading', `peer has not read for ${Math.round(now - this.congestedSince)} ms`),
      );
    }
    return false;
  }

  // A throwing handler is a bug in our code, not the peer's: log it and end the call rather than parse on.
  private handlerFailed(err: unknown): void {
    this.log.error({ err, pipecatcall_id: this.uuid }, 'audiosocket handler threw; closing the connection');
    this.close();
  }

  private finish(reason: CloseReason): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.flushIn();
    this.flushOut();
    if (this.closeHandler !== undefined) this.deliverClose();
  }

  private deliverClose(): void {
    if (this.closeDelivered || this.closeHandler === undefined || this.reason === undefined) return;
    this.closeDelivered = true;
    try {
      this.closeHandler(this.reason);
    } catch (err) {
      this.log.error({ err, pipecatcall_id: this.uuid }, 'audiosocket close handler threw');
    }
  }

  private flushIn(): void {
    if (this.framesIn > 0) this.framesInCounter.inc(this.framesIn);
    this.framesIn = 0;
  }

  private flushOut(): void {
    if (this.framesOut > 0) this.framesOutCounter.inc(this.framesOut);
    this.framesOut = 0;
  }
}
