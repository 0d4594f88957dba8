// The Audiosocket TCP listener Asterisk dials, one connection per call (SPEC §2.2): reads the UUID handshake with
// a timeout, then hands an AudiosocketConnection to onCall. Bad peers are closed and counted, never crash us.

import { createServer, type Server, type Socket } from 'node:net';
import { pollOutputClocks } from '../../audio/clock.js';
import { ProtocolError } from '../../errors.js';
import { LogThrottle } from '../../log-throttle.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { uuidFromBytes } from '../../model/uuid.js';
import { AudiosocketConnection } from './connection.js';
import { AudiosocketDecoder, KIND_UUID, type AudiosocketMessage } from './protocol.js';

export interface AudiosocketServerOptions {
  host: string;
  port: number;
  handshakeTimeoutMs: number;
  maxFrameBytes: number;
  metrics: Metrics;
  log: Logger;
  /** A call arrived. If it throws or rejects, the connection is closed. */
  onCall: (uuid: string, conn: AudiosocketConnection) => Promise<void> | void;
  /** Open connections at most (handshakes included); more are closed at once and counted. */
  maxConnections?: number;
}

export class AudiosocketServer {
  private readonly options: AudiosocketServerOptions;
  private readonly server: Server;
  /** Every open socket, with its connection once the UUID is in. */
  private readonly sockets = new Map<Socket, AudiosocketConnection | undefined>();
  private closing: Promise<void> | undefined;
  // A peer can open bad connections (or exhaust descriptors) at will: these warnings are rate-limited.
  private readonly rejectedLog = new LogThrottle();
  private readonly capLog = new LogThrottle();

  constructor(options: AudiosocketServerOptions) {
    this.options = options;
    this.server = createServer((socket) => this.accept(socket));
    this.server.on('error', (err: NodeJS.ErrnoException) => {
      if (!this.server.listening) return; // a failed listen() rejects instead
      const reason = err.code === 'EMFILE' || err.code === 'ENFILE' ? 'emfile' : 'accept_error';
      this.options.metrics.connectionsRefusedTotal.inc({ listener: 'audiosocket', reason });
      this.capLog.warn(this.options.log, { err: err.message, code: err.code }, 'audiosocket listener cannot accept connections');
    });
  }

  /** Open TCP connections, including those still in the handshake. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Starts listening; resolves with the bound address (the real port when `port` is 0). */
  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', onError);
        const address = this.server.address();
        if (address === null || typeof address === 'string') {
          reject(new Error('audiosocket listener has no TCP address'));
          return;
        }
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  /** Stops accepting and destroys every open connection (their onClose gets 'local'). Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (!this.server.listening) {
        resolve();
      } else {
        // 'close' fires before libuv releases the listening handle: uv_close completes in a later loop iteration's
        // close phase, which two nested check phases (setImmediate) are guaranteed to straddle.
        this.server.close(() => setImmediate(() => setImmediate(resolve)));
      }
      for (const [socket, conn] of this.sockets) {
        if (conn !== undefined) conn.close();
        else socket.destroy();
      }
    });
    return this.closing;
  }

  private accept(socket: Socket): void {
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    const { metrics, log, handshakeTimeoutMs, maxFrameBytes } = this.options;
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    if (this.sockets.size >= (this.options.maxConnections ?? Infinity)) {
      metrics.connectionsRefusedTotal.inc({ listener: 'audiosocket', reason: 'cap' });
      this.capLog.warn(log, { remote, max: this.options.maxConnections }, 'audiosocket connection refused: too many open connections');
      socket.destroy();
      return;
    }
    // Asterisk hangs up if a payload trails its header by 5 ms: no Nagle delay on our writes.
    socket.setNoDelay(true);
    this.sockets.set(socket, undefined);

    let conn: AudiosocketConnection | undefined;
    let rejected = false;
    const reject = (kind: string, message: string, level: 'debug' | 'warn' = 'warn'): void => {
      if (rejected) return;
      rejected = true;
      clearTimeout(timer);
      decoder.stop();
      metrics.audiosocketProtocolErrorsTotal.inc({ kind });
      if (level === 'warn') this.rejectedLog.warn(log, { remote, kind }, `audiosocket connection rejected: ${message}`);
      else log.debug({ remote, kind }, `audiosocket connection rejected: ${message}`);
      socket.destroy();
    };
    const timer = setTimeout(
      () => reject('handshake_timeout', `no UUID within ${handshakeTimeoutMs} ms`),
      handshakeTimeoutMs,
    );

    const decoder = new AudiosocketDecoder(
      (msg: AudiosocketMessage) => {
        if (conn !== undefined) {
          conn.handleMessage(msg);
          return;
        }
        if (msg.kind !== KIND_UUID) {
          reject('no_uuid', `first message is kind 0x${msg.kind.toString(16)}, not a UUID`);
          return;
        }
        clearTimeout(timer);
        conn = new AudiosocketConnection(socket, uuidFromBytes(msg.payload), remote, { metrics, log });
        this.sockets.set(socket, conn);
        this.startCall(conn);
      },
      { maxFrameBytes },
    );

    // Always keep reading, never pause: Asterisk writes non-blocking and hangs up when its send buffer fills.
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
        // Under load reads arrive back to back; an output tick that fell due meanwhile goes out now.
        pollOutputClocks();
      } catch (err) {
        if (err instanceof ProtocolError) {
          if (conn !== undefined) conn.fail(err);
          else reject(err.kind, err.message);
          return;
        }
        // Handlers guard themselves, so this is a bug of ours: end this call, keep the process and the others.
        log.error({ err, remote }, 'audiosocket message dispatch failed; closing the connection');
        if (conn !== undefined) conn.close();
        else socket.destroy();
      }
    });
    socket.on('end', () => conn?.handleEnd());
    socket.on('error', (err) => {
      if (conn !== undefined) conn.handleError(err);
      else log.debug({ remote, err: err.message }, 'audiosocket socket error before the UUID');
    });
    socket.on('close', (hadError) => {
      clearTimeout(timer);
      decoder.stop();
      this.sockets.delete(socket);
      if (conn !== undefined) conn.handleClose(hadError);
      // Asterisk's AudioSocket() without Answer() connects and closes with no UUID: common, so only at debug.
      else if (this.closing === undefined) reject('closed_before_uuid', 'closed before sending its UUID', 'debug');
    });
  }

  private startCall(conn: AudiosocketConnection): void {
    const failed = (err: unknown): void => {
      this.options.log.warn({ err, pipecatcall_id: conn.uuid }, 'audiosocket call handler failed; closing');
      conn.close();
    };
    try {
      const result = this.options.onCall(conn.uuid, conn);
      if (result !== undefined) result.catch(failed);
    } catch (err) {
      failed(err);
    }
  }
}
