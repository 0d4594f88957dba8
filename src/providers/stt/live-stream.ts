// A live STT stream on one WebSocket session at a time, for providers whose SDK gives us a socket that takes
// 16 kHz PCM and sends transcripts back (Cartesia, ElevenLabs). This file is the state machine they share: the
// dial with a deadline, the single transparent reconnect with a bounded backlog (ReconnectBudget/AudioBacklog of
// the STT base, acting on `retryable`), a graceful goodbye on close bounded by a grace period, and a hard teardown
// that leaves no socket, timer or listener behind. A provider supplies only a LiveDialer: how its SDK dials,
// sends audio, says goodbye and reads its messages.

import type { WebSocket } from 'ws';

import { ProviderError } from '../../errors.js';
import { AudioBacklog, STT_BYTES_PER_SECOND, SttStreamBase } from '../base/stt.js';
import { providerFailure } from '../base/failure.js';
import type { SttOptions } from '../types.js';

/** One message from the provider, classified by its dialer. */
export type LiveMessage =
  | { kind: 'transcript'; text: string; final: boolean }
  | { kind: 'ignore' }
  /** The provider reported an error in the stream: reported, and if the socket then closes it decides the reconnect. */
  | { kind: 'error'; err: ProviderError }
  | { kind: 'malformed'; what: string };

export interface LiveHandlers {
  open(): void;
  message(m: LiveMessage): void;
  /** The socket is gone: before `open` a failed dial, after it a drop (or the answer to our goodbye). */
  closed(err: ProviderError): void;
}

export interface LiveSocket {
  readonly isOpen: boolean;
  readonly bufferedAmount: number;
  send(pcm: Buffer): void;
  /** Asks the provider to flush and close the session; `closed` follows when it does. */
  goodbye(): void;
  /** Hard close at once; no handler runs afterwards. */
  destroy(): void;
}

export interface LiveDialer {
  readonly provider: string;
  /** For messages: `host:port` of the endpoint. */
  readonly host: string;
  /** What the stream is, for messages: e.g. `Cartesia live transcription`. */
  readonly what: string;
  dial(h: LiveHandlers): Promise<LiveSocket>;
}

export interface LiveStreamConfig {
  /** A dial that is not upgraded within this long fails (retryable). */
  connectTimeoutMs: number;
  /** close(): how long to wait for the provider's flush and close after the goodbye. */
  closeGraceMs: number;
  /** Audio kept while reconnecting; older audio is dropped (and counted). */
  reconnectBufferMs: number;
  /** A stream that stayed up this long after its reconnect earns its one reconnect back. */
  stableAfterMs: number;
}

/** The socket's send buffer may hold this much audio before new audio is dropped (network slower than real time). */
const MAX_SOCKET_BUFFER_BYTES = 2 * STT_BYTES_PER_SECOND;
const WS_OPEN = 1;
const WS_CLOSED = 3;

interface Attempt {
  socket: LiveSocket | null;
  openedAt: number;
  /** The last error the provider reported in this session: it explains the close that usually follows. */
  serverError: ProviderError | null;
  /** Settles the dial (rejecting it) if it is still pending; no-op afterwards. */
  abandon(err: Error): void;
}

export class LiveSttStream extends SttStreamBase {
  private state: 'connecting' | 'open' | 'reconnecting' | 'closed' = 'connecting';
  private current: Attempt | null = null;
  private readonly backlog: AudioBacklog;
  private closeWaiter: (() => void) | null = null;

  constructor(
    private readonly dialer: LiveDialer,
    private readonly cfg: LiveStreamConfig,
    o: SttOptions,
  ) {
    super(dialer.provider, o, { stableAfterMs: cfg.stableAfterMs });
    this.backlog = new AudioBacklog(cfg.reconnectBufferMs, () => this.countDropped());
  }

  /** First dial: a failure rejects open() (no reconnect: the call has not started). */
  async start(): Promise<void> {
    const ended = (): ProviderError => new ProviderError(this.provider, 'stt', `the call ended before the ${this.dialer.what} stream opened`);
    if (this.o.signal.aborted) {
      this.state = 'closed';
      throw ended();
    }
    this.listenForAbort();
    try {
      await this.connect();
    } catch (err) {
      this.release();
      if (this.o.signal.aborted) throw ended();
      throw err instanceof ProviderError ? err : providerFailure(this.provider, 'stt', 'network', `cannot open ${this.dialer.what} at ${this.dialer.host}: ${String(err)}`);
    }
    if (this.state === 'closed') throw ended();
    this.state = 'open';
    this.log.debug({ host: this.dialer.host }, `${this.provider} stream open`);
  }

  write(pcm: Int16Array): void {
    if (this.state === 'closed' || pcm.length === 0) return;
    const socket = this.current?.socket ?? null;
    if (this.state !== 'open' || socket === null || !socket.isOpen) {
      // Reconnecting, or closing under us with its close not seen yet (a reconnect most likely follows): keep it.
      this.backlog.push(pcm);
      return;
    }
    if (socket.bufferedAmount > MAX_SOCKET_BUFFER_BYTES) {
      this.countDropped();
      return;
    }
    socket.send(Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength));
  }

  // ----- connection ----------------------------------------------------------------------------------------------

  private connect(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        if (err === undefined) {
          resolve();
          return true;
        }
        if (this.current === a) this.current = null;
        a.socket?.destroy();
        reject(err);
        return true;
      };
      const a: Attempt = { socket: null, openedAt: 0, serverError: null, abandon: (err) => void settle(err) };
      const timer = setTimeout(() => {
        settle(providerFailure(this.provider, 'stt', 'stall', `cannot open ${this.dialer.what} at ${this.dialer.host}: no WebSocket upgrade within ${this.cfg.connectTimeoutMs} ms`));
      }, this.cfg.connectTimeoutMs);
      this.current = a;
      const handlers: LiveHandlers = {
        open: () => {
          a.openedAt = Date.now();
          settle();
        },
        message: (m) => this.onMessage(a, m),
        closed: (err) => {
          if (!settle(err)) this.onClosed(a, err);
        },
      };
      this.dialer.dial(handlers).then(
        (socket) => {
          a.socket = socket;
          if (settled && this.current !== a) socket.destroy(); // timed out or closed while the SDK prepared the socket
        },
        // The SDK refused before dialling (its own checks of the options): a configuration error, not retried.
        (err: unknown) => settle(err instanceof ProviderError ? err : providerFailure(this.provider, 'stt', 'refused', `cannot open ${this.dialer.what} at ${this.dialer.host}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })),
      );
    });
  }

  private onMessage(a: Attempt, m: LiveMessage): void {
    if (this.current !== a || this.state === 'closed') return; // after close: the final flush of a call that is over
    switch (m.kind) {
      case 'transcript':
        if (m.text !== '') this.deliver({ text: m.text, final: m.final });
        return;
      case 'error':
        a.serverError = m.err;
        this.recoverable(m.err);
        return;
      case 'malformed':
        // Never the content: it may carry the caller's words.
        this.recoverable(providerFailure(this.provider, 'stt', 'malformed', `malformed message from ${this.dialer.what} at ${this.dialer.host}: ${m.what}`));
        return;
      case 'ignore':
        return;
    }
  }

  private onClosed(a: Attempt, err: ProviderError): void {
    if (this.current !== a) return;
    if (this.state === 'closed') {
      this.closeWaiter?.();
      return;
    }
    if (this.state !== 'open') return;
    this.current = null;
    a.socket?.destroy();
    // A refused key or a bad request reported just before the close is the reason, not the close itself.
    const why = a.serverError !== null && !a.serverError.retryable ? a.serverError : err;
    if (!this.mayReconnect(why, a.openedAt)) {
      this.fatal(why);
      return;
    }
    this.state = 'reconnecting';
    this.log.warn({ host: this.dialer.host, reason: why.message }, `${this.provider} stream dropped: reconnecting once`);
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    try {
      await this.connect();
    } catch (err) {
      if (this.state !== 'reconnecting') return; // closed meanwhile
      const pe = err instanceof ProviderError ? err : providerFailure(this.provider, 'stt', 'network', String(err));
      this.fatal(new ProviderError(this.provider, 'stt', `cannot reconnect the dropped ${this.dialer.what} stream: ${pe.message}`, { cause: err, retryable: pe.retryable }));
      return;
    }
    if (this.state !== 'reconnecting') return; // close() ran meanwhile and took the new socket down
    this.state = 'open';
    const backlog = this.backlog.drain();
    const socket = this.current?.socket;
    if (socket !== undefined && socket !== null && socket.isOpen) for (const chunk of backlog) socket.send(chunk);
    this.log.info({ host: this.dialer.host, backlog_frames: backlog.length }, `${this.provider} stream reconnected`);
  }

  // ----- teardown ------------------------------------------------------------------------------------------------

  protected async shutdown(): Promise<void> {
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    this.stopListening();
    const socket = this.current?.socket ?? null;
    if (wasOpen && socket !== null && socket.isOpen) {
      let timeout: NodeJS.Timeout | undefined;
      const serverClosed = new Promise<void>((resolve) => {
        this.closeWaiter = resolve;
        timeout = setTimeout(resolve, this.cfg.closeGraceMs);
      });
      try {
        socket.goodbye();
        await serverClosed;
      } catch {
        // Not open any more: nothing to flush.
      } finally {
        clearTimeout(timeout);
        this.closeWaiter = null;
      }
    }
    this.release();
  }

  /** Synchronous release of everything: the socket (or the dial in progress), listeners, buffered audio. */
  private release(): void {
    this.state = 'closed';
    this.stopListening();
    const a = this.current;
    this.current = null;
    if (a !== null) {
      a.abandon(new ProviderError(this.provider, 'stt', 'closed while connecting'));
      a.socket?.destroy();
    }
    this.backlog.drain();
  }

  protected override fatal(err: ProviderError): void {
    this.release();
    super.fatal(err);
  }
}

/**
 * Feeds a `ws` WebSocket's open/error/close into LiveHandlers: one `closed` per socket, carrying the error that
 * explains it when one came first (a refused upgrade fires `error` then `close`). Returns the detach function;
 * `destroy` terminates the socket so no 30 s close-handshake timer is left behind.
 */
export function watchWebSocket(ws: WebSocket, h: LiveHandlers, failure: (raw: string, opened: boolean) => ProviderError): { detach(): void; destroy(): void } {
  let opened = false;
  let lastError = '';
  let done = false;
  const onOpen = (): void => {
    opened = true;
    h.open();
  };
  const onError = (err: Error): void => {
    if (lastError === '') lastError = err.message;
  };
  const onClose = (code: number, reason: Buffer): void => {
    if (done) return;
    done = true;
    const text = reason.toString();
    const raw = !opened && lastError !== '' ? lastError : `closed with code ${code}${text === '' ? '' : ` (${text})`}`;
    h.closed(failure(raw, opened));
  };
  ws.on('open', onOpen);
  ws.on('error', onError);
  ws.on('close', onClose);
  const detach = (): void => {
    done = true;
    ws.off('open', onOpen);
    ws.off('close', onClose);
    // The error listener stays: a late `error` on a socket without one would be an uncaught exception.
  };
  return {
    detach,
    destroy: () => {
      detach();
      if (ws.readyState !== WS_CLOSED) ws.terminate();
    },
  };
}

/** A `ws` failure (refused upgrade, refused connection, a drop) as a ProviderError whose status decides `retryable`. */
export function socketFailure(provider: string, what: string, host: string, keyEnv: string, raw: string, redact: (t: string) => string): ProviderError {
  const say = (why: string): string => `${what} at ${host}: ${redact(why)}`;
  const status = /Unexpected server response: (\d{3})/.exec(raw)?.[1];
  if (status !== undefined) {
    const code = Number(status);
    const why = code === 401 || code === 403 ? `HTTP ${code}: the API key was refused (check ${keyEnv})` : `HTTP ${code} at the WebSocket upgrade`;
    return providerFailure(provider, 'stt', 'http', say(why), { status: code });
  }
  return providerFailure(provider, 'stt', 'network', say(raw.includes('ECONNREFUSED') ? 'connection refused' : raw));
}

export const isWsOpen = (ws: WebSocket): boolean => ws.readyState === WS_OPEN;
