// The live stream of one call on Deepgram's `listen.v1` socket (the SDK facts it relies on are listed in
// deepgram.ts): dial, KeepAlive, stall detection, the single transparent reconnect with a bounded backlog, and
// the graceful CloseStream on close. Policy shared with other STTs lives in the STT base.

import type { DeepgramClient } from '@deepgram/sdk';

import { ProviderError } from '../../errors.js';
import { AudioBacklog, STT_BYTES_PER_SECOND, STT_SAMPLE_RATE, SttStreamBase } from '../base/stt.js';
import { providerFailure } from '../base/failure.js';
import type { SttOptions } from '../types.js';
import { deepgramOpenError, readDeepgramMessage, terminateRaw } from './deepgram-protocol.js';

type ListenV1Client = DeepgramClient['listen']['v1'];
type ListenSocket = Awaited<ReturnType<ListenV1Client['connect']>>;
type ConnectArgs = Parameters<ListenV1Client['connect']>[0];

const SAMPLE_RATE = STT_SAMPLE_RATE;
const BYTES_PER_SECOND = STT_BYTES_PER_SECOND;
/** The socket's send buffer may hold this much audio before new audio is dropped (network slower than real time). */
const MAX_SOCKET_BUFFER_BYTES = 2 * BYTES_PER_SECOND;
const OPEN = 1;

/** DeepgramSttSettings with every default filled in (see deepgram.ts for what each means). */
export interface DeepgramStreamConfig {
  model: string;
  connectTimeoutMs: number;
  closeGraceMs: number;
  keepAliveMs: number;
  stallTimeoutMs: number;
  reconnectBufferMs: number;
  stableAfterMs: number;
}

/** The dial in progress: settled by the socket's open, or by its close/error (reason read a microtask later). */
interface Dial {
  resolve: () => void;
  reject: (err: Error) => void;
  reason: string;
  settled: boolean;
}

interface Attached {
  socket: ListenSocket;
  onOpen: () => void;
  onMessage: (message: unknown) => void;
  onClose: (event: { code: number; reason?: string }) => void;
  onError: (err: Error) => void;
  dial: Dial | null;
  openedAt: number;
}

export class DeepgramStream extends SttStreamBase {
  private state: 'connecting' | 'open' | 'reconnecting' | 'closed' = 'connecting';
  private current: Attached | null = null;
  private closeWaiter: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Audio written while reconnecting. */
  private readonly backlog: AudioBacklog;
  private lastSentAt = 0;
  private audioBytesSinceMessage = 0;
  /** When audio started flowing again after Deepgram's last message: the stall clock. */
  private audioSinceMessageAt = 0;

  constructor(
    private readonly listen: ListenV1Client,
    private readonly cfg: DeepgramStreamConfig,
    private readonly host: string,
    private readonly redact: (text: string) => string,
    o: SttOptions,
  ) {
    super('deepgram', o, { stableAfterMs: cfg.stableAfterMs });
    this.backlog = new AudioBacklog(cfg.reconnectBufferMs, () => this.countDropped());
  }

  /** First dial: failure rejects open() (no reconnect: the call has not started). */
  async start(): Promise<void> {
    if (this.o.signal.aborted) {
      this.state = 'closed';
      throw new ProviderError('deepgram', 'stt', 'the call ended before the Deepgram stream opened');
    }
    this.listenForAbort();
    try {
      await this.dial();
    } catch (err) {
      this.release();
      if (this.o.signal.aborted) throw new ProviderError('deepgram', 'stt', 'the call ended before the Deepgram stream opened');
      throw deepgramOpenError(err, 'cannot open Deepgram live transcription', this.host, this.cfg.connectTimeoutMs, this.redact);
    }
    if (this.state === 'closed') {
      throw new ProviderError('deepgram', 'stt', 'the call ended before the Deepgram stream opened');
    }
    this.state = 'open';
    const tick = Math.max(50, Math.min(1000, this.cfg.keepAliveMs / 4, this.cfg.stallTimeoutMs > 0 ? this.cfg.stallTimeoutMs / 4 : 1000));
    this.timer = setInterval(() => this.onTick(), tick);
    this.log.debug({ host: this.host, model: this.cfg.model }, 'deepgram stream open');
  }

  write(pcm: Int16Array): void {
    if (this.state === 'closed' || pcm.length === 0) return;
    if (this.state === 'reconnecting') {
      this.backlog.push(pcm);
      return;
    }
    const cur = this.current;
    if (cur === null || cur.socket.readyState !== OPEN) {
      // Closing under us, its close event not seen yet: most likely a reconnect follows, so keep the audio.
      this.backlog.push(pcm);
      return;
    }
    if (cur.socket.socket.bufferedAmount > MAX_SOCKET_BUFFER_BYTES) {
      this.countDropped();
      return;
    }
    cur.socket.sendMedia(pcm);
    const now = Date.now();
    this.lastSentAt = now;
    if (this.audioBytesSinceMessage === 0) this.audioSinceMessageAt = now;
    this.audioBytesSinceMessage += pcm.byteLength;
  }

  // ----- connection ----------------------------------------------------------------------------------------------

  private async dial(): Promise<void> {
    const args: ConnectArgs = {
      model: this.cfg.model,
      encoding: 'linear16',
      sample_rate: SAMPLE_RATE,
      channels: 1,
      interim_results: 'true',
      punctuate: 'true',
      smart_format: 'true',
      ...(this.o.language === '' ? {} : { language: this.o.language }),
      reconnectAttempts: 0,
      shouldReconnect: () => false,
      connectionTimeoutInSeconds: this.cfg.connectTimeoutMs / 1000,
    };
    const socket = await this.listen.connect(args);
    if (this.state === 'closed') return; // closed while the SDK prepared the socket: it never dialled
    await new Promise<void>((resolve, reject) => {
      const dial: Dial = { resolve, reject, reason: '', settled: false };
      const a: Attached = {
        socket,
        dial,
        openedAt: 0,
        onOpen: () => this.onOpen(a),
        onMessage: (m) => this.onMessage(a, m),
        onClose: (e) => this.onSocketClose(a, e),
        onError: (e) => this.onSocketError(a, e),
      };
      this.current = a;
      socket.on('open', a.onOpen);
      socket.on('message', a.onMessage);
      socket.on('close', a.onClose);
      socket.on('error', a.onError);
      socket.connect();
    });
  }

  private onOpen(a: Attached): void {
    if (this.current !== a || a.dial === null) return;
    const dial = a.dial;
    a.dial = null;
    a.openedAt = Date.now();
    this.lastSentAt = a.openedAt;
    this.audioBytesSinceMessage = 0;
    dial.settled = true;
    dial.resolve();
  }

  private failDial(a: Attached, fallback: string): void {
    const dial = a.dial;
    if (dial === null || dial.settled) return;
    dial.settled = true;
    // The SDK reports close (code 1000) before the error that says why: read the reason after both ran.
    queueMicrotask(() => {
      a.dial = null;
      dial.reject(new Error(dial.reason === '' ? fallback : dial.reason));
    });
  }

  private onSocketError(a: Attached, err: Error): void {
    if (a.dial !== null) {
      if (a.dial.reason === '') a.dial.reason = err.message;
      this.failDial(a, err.message);
      return;
    }
    if (this.current === a && this.state === 'open') this.log.debug({ err: this.redact(err.message) }, 'deepgram socket error');
  }

  private onSocketClose(a: Attached, event: { code: number; reason?: string }): void {
    if (a.dial !== null) {
      this.failDial(a, `closed with code ${event.code} before the upgrade completed`);
      return;
    }
    if (this.current !== a) return;
    if (this.state === 'closed') {
      this.closeWaiter?.();
      return;
    }
    if (this.state === 'open') this.onDropped(a, `closed with code ${event.code}${event.reason ? ` (${event.reason})` : ''}`);
  }

  /** The live stream went away without us asking: reconnect once, else the call's STT is dead. */
  private onDropped(a: Attached, why: string): void {
    this.detach(a);
    this.current = null;
    const dropped = providerFailure('deepgram', 'stt', 'network', `Deepgram stream at ${this.host} dropped again: ${this.redact(why)}`);
    if (!this.mayReconnect(dropped, a.openedAt)) {
      this.fatal(dropped);
      return;
    }
    this.state = 'reconnecting';
    this.log.warn({ host: this.host, reason: this.redact(why) }, 'deepgram stream dropped: reconnecting once');
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    try {
      await this.dial();
    } catch (err) {
      if (this.state !== 'reconnecting') return; // closed meanwhile
      const cur = this.current;
      if (cur !== null) this.detach(cur);
      this.current = null;
      this.fatal(deepgramOpenError(err, 'cannot reconnect the dropped Deepgram stream', this.host, this.cfg.connectTimeoutMs, this.redact));
      return;
    }
    if (this.state !== 'reconnecting') return; // close() ran meanwhile and took the new socket down
    this.state = 'open';
    const cur = this.current;
    const backlog = this.backlog.drain();
    try {
      for (const chunk of backlog) cur?.socket.sendMedia(chunk);
    } catch {
      // Dropped again at once: the close handler reports it.
    }
    if (backlog.length > 0) this.lastSentAt = Date.now();
    this.log.info({ host: this.host, backlog_frames: backlog.length }, 'deepgram stream reconnected');
  }

  private onTick(): void {
    const cur = this.current;
    if (this.state !== 'open' || cur === null || cur.socket.readyState !== OPEN) return;
    const now = Date.now();
    const stallMs = this.cfg.stallTimeoutMs;
    // Only a stall while audio flows: with no audio Deepgram has nothing to answer.
    if (stallMs > 0 && this.audioBytesSinceMessage >= BYTES_PER_SECOND && now - this.audioSinceMessageAt >= stallMs) {
      terminateRaw(cur.socket);
      this.onDropped(cur, `no message for ${stallMs} ms while audio was flowing`);
      return;
    }
    if (now - this.lastSentAt >= this.cfg.keepAliveMs) {
      try {
        cur.socket.sendKeepAlive({ type: 'KeepAlive' });
        this.lastSentAt = now;
      } catch {
        // Closing: the close handler takes over.
      }
    }
  }

  // ----- messages ------------------------------------------------------------------------------------------------

  private onMessage(a: Attached, message: unknown): void {
    if (this.current !== a) return;
    this.audioBytesSinceMessage = 0;
    if (this.state === 'closed') return; // the final flush after CloseStream: the call is over
    try {
      this.handleMessage(message);
    } catch (err) {
      // A throwing callback must not reach the SDK, which would print it on the console.
      this.log.error({ err }, 'deepgram transcript handler failed');
    }
  }

  private handleMessage(message: unknown): void {
    const m = readDeepgramMessage(message);
    if (m.kind === 'transcript') this.deliver({ text: m.text, final: m.final });
    else if (m.kind === 'malformed') this.malformed(m.what);
    else if (m.kind === 'error') this.recoverable(providerFailure('deepgram', 'stt', 'server', `Deepgram reported an error: ${this.redact(m.description)}`));
  }

  private malformed(what: string): void {
    // Never the content: it may carry the caller's words.
    this.recoverable(providerFailure('deepgram', 'stt', 'malformed', `malformed message from Deepgram at ${this.host}: ${what}`));
  }

  // ----- teardown ------------------------------------------------------------------------------------------------

  protected async shutdown(): Promise<void> {
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    this.stopTimers();
    const cur = this.current;
    if (cur !== null && wasOpen && cur.socket.readyState === OPEN) {
      // CloseStream makes Deepgram flush, send Metadata and close the socket itself.
      let timeout: NodeJS.Timeout | undefined;
      const serverClosed = new Promise<void>((resolve) => {
        this.closeWaiter = resolve;
        timeout = setTimeout(resolve, this.cfg.closeGraceMs);
      });
      try {
        cur.socket.sendCloseStream({ type: 'CloseStream' });
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

  /** Synchronous release of everything: timers, listeners, the socket, buffered audio. */
  private release(): void {
    this.state = 'closed';
    this.stopTimers();
    const cur = this.current;
    this.current = null;
    if (cur !== null) this.detach(cur);
    this.backlog.drain();
  }

  private stopTimers(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.stopListening();
  }

  private detach(a: Attached): void {
    const s = a.socket;
    s.off('open', a.onOpen);
    s.off('message', a.onMessage);
    s.off('close', a.onClose);
    s.off('error', a.onError);
    if (a.dial !== null && !a.dial.settled) {
      const dial = a.dial;
      dial.settled = true;
      a.dial = null;
      dial.reject(new Error('closed while connecting'));
    }
    try {
      s.close();
    } catch {
      // Already closed.
    }
    terminateRaw(s);
  }

  protected override fatal(err: ProviderError): void {
    this.release();
    super.fatal(err);
  }



}


