// An Audiosocket client that behaves like Asterisk (SPEC §2.1), for `pipecat-control call dial` and the tests:
// UUID first, one write per message with TCP_NODELAY, real-time paced audio, hangup as a plain TCP close.

import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { uuidToBytes } from '../../model/uuid.js';
import { FRAME_MS, frameBytes } from '../../audio/pcm.js';
import {
  AudiosocketDecoder,
  KIND_AUDIO_8K,
  KIND_DTMF,
  KIND_UUID,
  MAX_PAYLOAD_BYTES,
  encodeMessage,
  rateOfKind,
  type AudiosocketMessage,
} from './protocol.js';

export interface AudiosocketClientOptions {
  host: string;
  port: number;
  /** Canonical textual UUID, sent as 16 raw bytes. */
  uuid: string;
  /** Asterisk sets TCP_NODELAY; default true. */
  noDelay?: boolean;
  signal?: AbortSignal;
}

/** A received message and when it arrived (performance.now(), ms). */
export type MessageHandler = (msg: AudiosocketMessage, receivedAt: number) => void;

export class AudiosocketClient {
  readonly uuid: string;
  /** The raw socket, for tests that need to misbehave (e.g. pause() to never read). */
  readonly socket: Socket;
  /** Resolves when the socket has closed, whoever closed it. Never rejects. */
  readonly closed: Promise<void>;
  private handler: MessageHandler | undefined;
  private decodeError: Error | undefined;

  private constructor(socket: Socket, uuid: string) {
    this.socket = socket;
    this.uuid = uuid;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    const decoder = new AudiosocketDecoder((msg) => this.handler?.(msg, performance.now()), {
      maxFrameBytes: MAX_PAYLOAD_BYTES,
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (err) {
        this.decodeError = err as Error;
        socket.destroy();
      }
    });
    // Errors end the socket; `closed` reports it. Without a listener an ECONNRESET would crash the process.
    socket.on('error', () => {});
  }

  /** Connects and sends the UUID message, as Asterisk does on answer. */
  static connect(options: AudiosocketClientOptions): Promise<AudiosocketClient> {
    const { host, port, uuid, noDelay = true, signal } = options;
    const uuidMessage = encodeMessage(KIND_UUID, uuidToBytes(uuid));
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host, port, noDelay, ...(signal === undefined ? {} : { signal }) });
      const onError = (err: Error): void => {
        socket.destroy();
        reject(err);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        socket.setNoDelay(noDelay);
        const client = new AudiosocketClient(socket, uuid);
        socket.write(uuidMessage);
        resolve(client);
      });
    });
  }

  /** The error that made the client drop the connection (the server broke the protocol), if any. */
  get error(): Error | undefined {
    return this.decodeError;
  }

  get isClosed(): boolean {
    return this.socket.destroyed;
  }

  /** Sets the handler for every received message (audio, hangup, …). */
  onMessage(cb: MessageHandler): void {
    this.handler = cb;
  }

  /** One audio message (header and payload in one write). */
  sendAudio(pcm: Buffer, kind: number = KIND_AUDIO_8K): boolean {
    return this.write(encodeMessage(kind, pcm));
  }

  /** One DTMF digit (`0-9*#A-D`), as Asterisk sends at digit end. */
  sendDtmf(digit: string): boolean {
    if (!/^[0-9*#A-D]$/.test(digit)) throw new RangeError(`not a DTMF digit: ${JSON.stringify(digit)}`);
    return this.write(encodeMessage(KIND_DTMF, Buffer.from(digit, 'latin1')));
  }

  /** Arbitrary bytes, for protocol tests. */
  sendRaw(bytes: Uint8Array): boolean {
    return this.write(bytes);
  }

  /** Caller hangup the way Asterisk does it: a plain TCP close, no 0x00 message. */
  hangup(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.socket.destroy();
  }

  /**
   * Sends `pcm` (s16le at the rate of `kind`) as 20 ms frames at real-time pace, on a drift-corrected schedule
   * (frame i at t0 + 20·i ms), as Asterisk does. The last partial frame is padded with silence. Stops early when
   * the socket closes; rejects with an AbortError when `signal` aborts.
   */
  async streamPcm(pcm: Buffer, kind: number = KIND_AUDIO_8K, options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    const size = frameBytes(rateOfKind(kind));
    const start = performance.now();
    for (let i = 0, offset = 0; offset < pcm.length; i++, offset += size) {
      signal?.throwIfAborted();
      if (this.socket.destroyed) return;
      const wait = start + i * FRAME_MS - performance.now();
      if (wait > 1) await sleep(wait, undefined, signal === undefined ? {} : { signal });
      if (this.socket.destroyed) return;
      let frame = pcm.subarray(offset, offset + size);
      if (frame.length < size) {
        const padded = Buffer.alloc(size);
        frame.copy(padded);
        frame = padded;
      }
      this.sendAudio(frame, kind);
    }
  }

  private write(bytes: Uint8Array): boolean {
    if (this.socket.destroyed || this.socket.writableEnded) return false;
    this.socket.write(bytes);
    return true;
  }
}
