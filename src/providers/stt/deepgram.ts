// Deepgram streaming STT (SPEC §3.3) through the official @deepgram/sdk v5 `listen.v1` socket: linear16 16 kHz mono
// with interim results, one transparent reconnect of a dropped stream, then onFatal (the call ends `stt_error`).
//
// Facts about the SDK (5.13) this module is built around:
// - `client.listen.v1.connect(args)` only builds the socket (startClosed); `socket.connect()` dials. Every ConnectArgs
//   key that is not a WebSocket option becomes a query parameter; `Authorization: Token <key>` comes from `apiKey`.
// - `environment.production` is the WebSocket base (`wss://api.deepgram.com`); `base` is the REST base.
// - The SDK reconnects on its own (up to 30 times, 1–5 s random backoff, unbounded send queue). We switch that off
//   (`reconnectAttempts: 0`, `shouldReconnect: () => false`) and own the single reconnect, so the audio buffered
//   meanwhile is bounded and the second failure is reported instead of retried forever.
// - A failed dial (HTTP 401/500 at the upgrade, ECONNREFUSED, its own TIMEOUT) first fires a synthetic `close`
//   with code 1000 and then `error` carrying the real reason, so the reason is read one microtask later.
// - A text frame that is not JSON reaches `on('message')` as the raw string (the SDK does not throw).
// - `sendMedia`/`sendKeepAlive`/`sendCloseStream` throw unless the socket is OPEN.
// - `socket.close()` re-fires the `close` handlers with a synthetic code 1000: handlers are detached first.
// - `socket.on(event, cb)` replaces the previous handler (v5 semantics) and `waitForOpen()` adds listeners it never
//   removes, so each socket gets exactly one handler per event from us, removed with `off()` on teardown.
// - The underlying `ws` keeps a 30 s timer when the server never answers our close frame; a stalled session is
//   therefore terminated through the (private) `_ws`, the same handle the SDK's own `ping()` uses.
// Deepgram itself closes a session that gets no audio and no KeepAlive for 10 s (NET-0001): KeepAlive every few
// seconds whenever no audio was sent.

import { DeepgramClient } from '@deepgram/sdk';

import { ProviderError } from '../../errors.js';
import { AudioBacklog, ReconnectBudget, STT_BYTES_PER_SECOND, STT_SAMPLE_RATE, SttStreamBase } from '../base/stt.js';
import { providerFailure, redactorFor } from '../base/failure.js';
import type { SttOptions, SttProvider, SttStream } from '../types.js';

export interface DeepgramSttSettings {
  apiKey: string;
  /** '' = the SDK's default (api.deepgram.com); else an http(s):// base, from which ws(s):// is derived. */
  baseUrl: string;
  /** Default `nova-2`. */
  model?: string;
  /** A dial that is not upgraded within this long fails. Default 5000. */
  connectTimeoutMs?: number;
  /** close(): how long to wait for Deepgram's final flush and close after CloseStream. Default 1000. */
  closeGraceMs?: number;
  /** KeepAlive when no audio was sent for this long. Default 4000 (Deepgram closes idle sessions after 10 s). */
  keepAliveMs?: number;
  /** Audio flowing but no message from Deepgram for this long → treated as a dropped stream. 0 = off. Default 20000. */
  stallTimeoutMs?: number;
  /** Audio kept while reconnecting; older audio is dropped (and counted). Default 5000 ms. */
  reconnectBufferMs?: number;
  /**
   * A stream that stayed up this long after its reconnect earns its one reconnect back: a blip an hour later in a
   * long call is again transparent, while two failures in a row still end the call. Default 60000.
   */
  stableAfterMs?: number;
}

type ListenV1Client = DeepgramClient['listen']['v1'];
type ListenSocket = Awaited<ReturnType<ListenV1Client['connect']>>;
type ConnectArgs = Parameters<ListenV1Client['connect']>[0];

const SAMPLE_RATE = STT_SAMPLE_RATE;
const BYTES_PER_SECOND = STT_BYTES_PER_SECOND;
/** The socket's send buffer may hold this much audio before new audio is dropped (network slower than real time). */
const MAX_SOCKET_BUFFER_BYTES = 2 * BYTES_PER_SECOND;
const OPEN = 1;
const CLOSED = 3;

const DEFAULTS = {
  model: 'nova-2',
  connectTimeoutMs: 5000,
  closeGraceMs: 1000,
  keepAliveMs: 4000,
  stallTimeoutMs: 20_000,
  reconnectBufferMs: 5000,
  stableAfterMs: 60_000,
};

export function createDeepgramStt(settings: DeepgramSttSettings): SttProvider {
  const cfg = {
    model: settings.model ?? DEFAULTS.model,
    connectTimeoutMs: settings.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    closeGraceMs: settings.closeGraceMs ?? DEFAULTS.closeGraceMs,
    keepAliveMs: settings.keepAliveMs ?? DEFAULTS.keepAliveMs,
    stallTimeoutMs: settings.stallTimeoutMs ?? DEFAULTS.stallTimeoutMs,
    reconnectBufferMs: settings.reconnectBufferMs ?? DEFAULTS.reconnectBufferMs,
    stableAfterMs: settings.stableAfterMs ?? DEFAULTS.stableAfterMs,
  };
  const environment = environmentFor(settings.baseUrl);
  const host = environment === undefined ? 'api.deepgram.com' : new URL(environment.production).host;
  let client: DeepgramClient | undefined;
  const redact = redactorFor(settings.apiKey);

  return {
    name: 'deepgram',
    async open(options: SttOptions): Promise<SttStream> {
      if (settings.apiKey === '') {
        throw new ProviderError('deepgram', 'stt', 'Deepgram needs an API key: set DEEPGRAM_API_KEY');
      }
      // One client per provider: it only holds options; every call dials its own socket.
      client ??= new DeepgramClient({ apiKey: settings.apiKey, ...(environment === undefined ? {} : { environment }) });
      const stream = new DeepgramStream(client.listen.v1, cfg, host, redact, options);
      await stream.start();
      return stream;
    },
  };
}

/** `http://h:p` → REST `http://h:p`, WebSocket `ws://h:p` (https → wss). */
function environmentFor(baseUrl: string): { base: string; production: string; agent: string; agentRest: string } | undefined {
  if (baseUrl === '') return undefined;
  const url = new URL(baseUrl);
  if (url.protocol !== 'http:' && url.protocol !== 'https:' && url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new ProviderError('deepgram', 'stt', `DEEPGRAM_BASE_URL must be an http(s):// URL, got ${url.protocol}//${url.host}`);
  }
  const secure = url.protocol === 'https:' || url.protocol === 'wss:';
  const path = url.pathname.replace(/\/+$/, '');
  const rest = `${secure ? 'https' : 'http'}://${url.host}${path}`;
  const ws = `${secure ? 'wss' : 'ws'}://${url.host}${path}`;
  return { base: rest, production: ws, agent: ws, agentRest: rest };
}

type Config = Required<Omit<DeepgramSttSettings, 'apiKey' | 'baseUrl'>>;

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

class DeepgramStream extends SttStreamBase {
  private state: 'connecting' | 'open' | 'reconnecting' | 'closed' = 'connecting';
  private current: Attached | null = null;
  private readonly budget: ReconnectBudget;
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
    private readonly cfg: Config,
    private readonly host: string,
    private readonly redact: (text: string) => string,
    o: SttOptions,
  ) {
    super('deepgram', o);
    this.budget = new ReconnectBudget(cfg.stableAfterMs);
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
      throw this.openError(err, 'cannot open Deepgram live transcription');
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
    if (!this.budget.take(dropped, a.openedAt)) {
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
      this.fatal(this.openError(err, 'cannot reconnect the dropped Deepgram stream'));
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
    if (typeof message === 'string') {
      this.malformed(`a text frame that is not JSON (${message.length} chars)`);
      return;
    }
    if (typeof message !== 'object' || message === null || message instanceof Blob) {
      this.malformed('an unexpected binary frame');
      return;
    }
    const m = message as Record<string, unknown>;
    switch (m.type) {
      case 'Results': {
        const parsed = parseResults(m);
        if (parsed === null) {
          this.malformed('a Results message without channel.alternatives[0].transcript');
          return;
        }
        const text = parsed.text.trim();
        if (text === '') return;
        this.deliver({ text, final: parsed.final });
        return;
      }
      case 'Metadata':
      case 'UtteranceEnd':
      case 'SpeechStarted':
        return;
      case 'Error': {
        const description = typeof m.description === 'string' ? m.description : typeof m.message === 'string' ? m.message : 'unknown';
        this.recoverable(providerFailure('deepgram', 'stt', 'server', `Deepgram reported an error: ${this.redact(description)}`));
        return;
      }
      default:
        this.malformed(`a message of unknown type ${JSON.stringify(String(m.type)).slice(0, 40)}`);
    }
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

  private openError(err: unknown, what: string): ProviderError {
    if (err instanceof ProviderError) return err;
    const raw = err instanceof Error ? err.message : String(err);
    const status = /Unexpected server response: (\d{3})/.exec(raw)?.[1];
    const say = (why: string): string => `${what} at ${this.host}: ${this.redact(why)}`;
    if (status !== undefined) {
      const code = Number(status);
      const why = code === 401 || code === 403 ? `HTTP ${code}: the API key was refused (check DEEPGRAM_API_KEY)` : `HTTP ${code} at the WebSocket upgrade`;
      return providerFailure('deepgram', 'stt', 'http', say(why), { cause: err, status: code });
    }
    if (raw === 'TIMEOUT') return providerFailure('deepgram', 'stt', 'stall', say(`no WebSocket upgrade within ${this.cfg.connectTimeoutMs} ms`), { cause: err });
    return providerFailure('deepgram', 'stt', 'network', say(raw.includes('ECONNREFUSED') ? 'connection refused' : raw), { cause: err });
  }

}

function parseResults(m: Record<string, unknown>): { text: string; final: boolean } | null {
  const channel = m.channel as { alternatives?: unknown } | undefined;
  if (typeof channel !== 'object' || channel === null || !Array.isArray(channel.alternatives)) return null;
  const first: unknown = channel.alternatives[0];
  if (first === undefined) return { text: '', final: m.is_final === true };
  if (typeof first !== 'object' || first === null) return null;
  const transcript = (first as { transcript?: unknown }).transcript;
  if (typeof transcript !== 'string') return null;
  return { text: transcript, final: m.is_final === true };
}

/** Hard-closes the SDK socket's underlying `ws` (no 30 s close-handshake timer when the peer is gone or stalled). */
function terminateRaw(socket: ListenSocket): void {
  const raw = (socket.socket as unknown as { _ws?: { readyState: number; terminate?: () => void } })._ws;
  if (raw !== undefined && raw.readyState !== CLOSED) raw.terminate?.();
}
