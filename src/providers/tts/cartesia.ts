// Cartesia TTS through the official SDK's WebSocket (`@cartesia/cartesia-js` v4): one socket per call session,
// one Cartesia context per bot turn, so a barge-in cancels exactly that turn's generation (SPEC §3.5, §3.4).

import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { ClientOptions as WsClientOptions } from 'ws';
import type { GenerationRequest, WebsocketResponse } from '@cartesia/cartesia-js/resources/tts';
import type { TTSWS } from '@cartesia/cartesia-js/resources/tts/ws';
import { ProviderError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { TtsEvent, TtsProvider, TtsSession, TtsSessionOptions, TtsTurn, TtsTurnOptions } from '../types.js';

export interface CartesiaTtsSettings {
  apiKey: string;
  /** An `http(s)://` base; '' = the SDK default (https://api.cartesia.ai). The SDK always dials `wss://` on it. */
  baseUrl: string;
  /** Default 'sonic-3'. */
  model?: string;
  /**
   * Test hook, handed to `ws` unchanged: how the TCP (or TLS) connection to the server is made. The SDK always
   * dials `wss://`, so a plain local server is reached by returning `net.connect(port, host)` here.
   */
  createConnection?: WsClientOptions['createConnection'];
  /** A turn fails (retryable) when the server owes a reply and sends nothing for this long. Default 10 000 ms. */
  stallTimeoutMs?: number;
  /** The WebSocket upgrade must complete within this time. Default 10 000 ms. */
  connectTimeoutMs?: number;
}

const PROVIDER = 'cartesia';
const SAMPLE_RATE = 16_000;
const DEFAULT_BASE_URL = 'https://api.cartesia.ai';
// ws's OPEN readyState. The SDK's send() silently opens a *new* socket when the old one is CLOSING/CLOSED, which
// would escape our listeners and close(): never call it unless the socket is OPEN.
const WS_OPEN = 1;
// Bounded wait for the server's close frame before the socket is destroyed (ws would otherwise wait 30 s).
const CLOSE_WAIT_MS = 1000;

type CartesiaSdk = typeof import('@cartesia/cartesia-js');
type TtsWsModule = typeof import('@cartesia/cartesia-js/resources/tts/ws');
type CartesiaClient = InstanceType<CartesiaSdk['Cartesia']>;

let sdk: { Cartesia: CartesiaSdk['Cartesia']; TTSWS: TtsWsModule['TTSWS'] } | undefined;

// The SDK's ESM build cannot find its `ws` peer on Node 20 ("ws peer dependency is required"): its CommonJS
// build does, so it is loaded through require. TTSWS is constructed directly rather than via
// `client.tts.websocket()`, because that helper only returns after the handshake and a failed handshake is then
// reported a second time as an unhandled rejection (no `error` listener could be bound yet). Measured on 4.2.0.
function loadSdk(): NonNullable<typeof sdk> {
  if (sdk === undefined) {
    const requireCjs = createRequire(import.meta.url);
    const main = requireCjs('@cartesia/cartesia-js') as CartesiaSdk;
    const wsModule = requireCjs('@cartesia/cartesia-js/resources/tts/ws') as TtsWsModule;
    sdk = { Cartesia: main.Cartesia, TTSWS: wsModule.TTSWS };
  }
  return sdk;
}

export function createCartesiaTts(settings: CartesiaTtsSettings): TtsProvider {
  return {
    name: PROVIDER,
    async open(options: TtsSessionOptions): Promise<TtsSession> {
      if (options.voiceId === '') {
        throw new ProviderError(PROVIDER, 'tts', 'Cartesia TTS needs a voice id (tts_voice_id)');
      }
      const baseURL = settings.baseUrl === '' ? DEFAULT_BASE_URL : settings.baseUrl;
      if (!/^(https?|wss?):\/\//.test(baseURL) || hostOf(baseURL) === '') {
        throw new ProviderError(PROVIDER, 'tts', 'Cartesia TTS base URL must be an http(s):// or ws(s):// URL (CARTESIA_BASE_URL)');
      }
      const session = new CartesiaSession(settings, options);
      try {
        await session.connectFirst();
      } catch (err) {
        await session.close();
        throw err;
      }
      return session;
    },
  };
}

/** One WebSocket connection; replaced by a fresh one after it dies. */
interface Link {
  ws: TTSWS;
  ready: Promise<void>;
  open: boolean;
  dead: boolean;
  /** Serializes sends so the requests of a context reach the server in order. */
  chain: Promise<void>;
  /** Why the socket failed, from its `error` event, used in the close message. */
  lastError: string;
  closed: Promise<void>;
  detach(): void;
}

class CartesiaSession implements TtsSession {
  readonly name = PROVIDER;
  readonly sampleRate = SAMPLE_RATE;
  private readonly client: CartesiaClient;
  private readonly host: string;
  private readonly model: string;
  private readonly log: Logger;
  private link: Link | null = null;
  private readonly turns = new Map<string, CartesiaTurn>();
  private closing: Promise<void> | null = null;
  private readonly onSessionAbort = (): void => void this.close();

  constructor(
    private readonly settings: CartesiaTtsSettings,
    private readonly options: TtsSessionOptions,
  ) {
    const baseURL = settings.baseUrl === '' ? DEFAULT_BASE_URL : settings.baseUrl;
    // The base URL is passed explicitly so the SDK never falls back to reading CARTESIA_BASE_URL itself.
    this.client = new (loadSdk().Cartesia)({ apiKey: settings.apiKey, baseURL });
    this.host = hostOf(baseURL);
    this.model = settings.model ?? 'sonic-3';
    this.log = options.log;
    options.signal.addEventListener('abort', this.onSessionAbort, { once: true });
  }

  get stallTimeoutMs(): number {
    return this.settings.stallTimeoutMs ?? 10_000;
  }

  async connectFirst(): Promise<void> {
    if (this.options.signal.aborted) throw new ProviderError(PROVIDER, 'tts', 'Cartesia TTS session aborted before it opened');
    await this.ensureLink().ready;
  }

  startTurn(options: TtsTurnOptions): TtsTurn {
    const turn = new CartesiaTurn(this, options.signal, this.stallTimeoutMs);
    if (this.closing !== null) {
      turn.discard();
      return turn;
    }
    this.turns.set(turn.contextId, turn);
    // A socket lost in an earlier turn (or while idle) is replaced now, so it is ready by the first say().
    if (!turn.finished) this.ensureLink().ready.catch(() => undefined);
    return turn;
  }

  /** The base of every generation request of a turn (Cartesia repeats the full request on each message). */
  request(contextId: string, transcript: string, continues: boolean): GenerationRequest {
    const req: GenerationRequest = {
      model_id: this.model,
      transcript,
      voice: { mode: 'id', id: this.options.voiceId },
      output_format: { container: 'raw', encoding: 'pcm_s16le', sample_rate: SAMPLE_RATE },
      context_id: contextId,
      continue: continues,
      add_timestamps: true,
    };
    if (this.options.language !== '') req.language = this.options.language;
    return req;
  }

  /** Sends one message for a turn on the current link; a failure to connect or send fails that turn. */
  send(turn: CartesiaTurn, message: GenerationRequest): void {
    if (this.closing !== null) return;
    const link = turn.link ?? this.ensureLink();
    if (turn.link === null) turn.link = link;
    if (link.dead) {
      turn.finish(this.lostError(link));
      return;
    }
    link.chain = link.chain
      .then(async () => {
        await link.ready;
        if (turn.finished) return;
        if (link.dead || link.ws.socket.readyState !== WS_OPEN) throw this.lostError(link);
        await link.ws.send(message);
      })
      .catch((err: unknown) => {
        turn.finish(err instanceof ProviderError ? err : this.lostError(link, err));
      });
  }

  /** Cartesia's cancel message for a context; nothing to cancel when its socket is gone. */
  cancel(turn: CartesiaTurn): void {
    const link = turn.link;
    if (link === null || link.dead) return;
    link.chain = link.chain
      .then(async () => {
        await link.ready;
        if (link.dead || link.ws.socket.readyState !== WS_OPEN) return;
        await link.ws.cancelContext(turn.contextId);
      })
      .catch(() => undefined);
  }

  forget(turn: CartesiaTurn): void {
    if (this.turns.get(turn.contextId) === turn) this.turns.delete(turn.contextId);
  }

  close(): Promise<void> {
    if (this.closing === null) {
      this.options.signal.removeEventListener('abort', this.onSessionAbort);
      for (const turn of [...this.turns.values()]) turn.discard();
      this.turns.clear();
      const link = this.link;
      this.link = null;
      this.closing = link === null ? Promise.resolve() : this.dropLink(link);
    }
    return this.closing;
  }

  private ensureLink(): Link {
    if (this.link === null || this.link.dead) this.link = this.connect();
    return this.link;
  }

  private connect(): Link {
    const { TTSWS: Ws } = loadSdk();
    const wsOptions: WsClientOptions = { handshakeTimeout: this.settings.connectTimeoutMs ?? 10_000 };
    if (this.settings.createConnection !== undefined) wsOptions.createConnection = this.settings.createConnection;
    const ws = new Ws(this.client, wsOptions);

    let resolveClosed!: () => void;
    const link: Link = {
      ws,
      ready: Promise.resolve(),
      open: false,
      dead: false,
      chain: Promise.resolve(),
      lastError: '',
      closed: new Promise<void>((resolve) => (resolveClosed = resolve)),
      // The close listener stays until the socket has closed: dropLink waits for it.
      detach: () => ws.off('event', onEvent),
    };

    const onEvent = (event: WebsocketResponse): void => {
      if (link.dead) return;
      this.onServerEvent(event);
    };
    // Bound for the socket's whole life and never removed: without an `error` listener the SDK turns every server
    // error, parse failure and socket error into an unhandled rejection (internal-base.ts `_onError`).
    const onError = (err: Error & { error?: unknown }): void => {
      if (link.dead) return;
      if (err.error !== undefined) return; // a server `error` message: already handled as an event
      link.lastError = err.message;
      // Reached after the handshake only for a malformed message or a failed send: the stream can no longer be
      // trusted, so the turns on it fail and the next turn reconnects.
      if (link.open && /could not (parse|send)/.test(err.message)) {
        void this.dropLink(link, new ProviderError(PROVIDER, 'tts', `Cartesia TTS sent a malformed message on ${this.host}: ${err.message}`, { cause: err, retryable: true }));
      }
    };
    const onClose = (event: { code?: number }): void => {
      ws.socket.removeEventListener('close', onClose);
      resolveClosed();
      // Before the handshake completed, the rejected connect() reports the failure (with the HTTP status).
      if (link.dead || !link.open) return;
      const code = event.code ?? 1006;
      const why = link.lastError === '' ? '' : `: ${link.lastError}`;
      void this.dropLink(
        link,
        new ProviderError(PROVIDER, 'tts', `Cartesia TTS connection to ${this.host} closed (code ${code})${why}`, { retryable: true }),
      );
    };
    ws.on('error', onError);
    ws.on('event', onEvent);
    ws.socket.addEventListener('close', onClose);

    link.ready = ws.connect().then(
      () => {
        link.open = true;
        this.log.debug({ provider: PROVIDER, host: this.host }, 'tts connected');
      },
      (err: unknown) => {
        const error = this.connectError(err);
        void this.dropLink(link, error);
        throw error;
      },
    );
    // Turns await `ready` themselves; this keeps an unobserved failure from being an unhandled rejection.
    link.ready.catch(() => undefined);
    return link;
  }

  /** Marks a link dead, fails the turns that were using it and closes its socket (bounded wait). */
  private dropLink(link: Link, error?: ProviderError): Promise<void> {
    if (link.dead) return link.closed;
    link.dead = true;
    link.detach();
    if (this.link === link) this.link = null;
    if (error !== undefined) {
      for (const turn of [...this.turns.values()]) if (turn.link === link) turn.finish(error);
    }
    const socket = link.ws.socket as typeof link.ws.socket & { terminate?: () => void };
    if (socket.readyState === 3 /* CLOSED */) return Promise.resolve();
    try {
      link.ws.close({ code: 1000, reason: 'session closed' });
    } catch {
      // close() on a socket that never connected throws inside ws; the terminate below still releases it.
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        socket.terminate?.();
        resolve();
      }, CLOSE_WAIT_MS);
      void link.closed.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  onServerEvent(event: WebsocketResponse): void {
    const contextId = event.context_id;
    if (contextId === undefined || contextId === '') {
      // An error without a context concerns the whole connection: every turn on it fails.
      if (event.type === 'error') for (const turn of [...this.turns.values()]) turn.finish(this.serverError(event));
      return;
    }
    // Unknown ids are cancelled or finished contexts: Cartesia may still send chunks it had already generated.
    this.turns.get(contextId)?.onServerEvent(event);
  }

  serverError(event: WebsocketResponse.Error): ProviderError {
    const raw = event as WebsocketResponse.Error & { error?: unknown };
    const text = [event.title, event.message, typeof raw.error === 'string' ? raw.error : undefined]
      .filter((s): s is string => typeof s === 'string' && s !== '')
      .join(': ');
    const status = typeof event.status_code === 'number' ? event.status_code : 0;
    return new ProviderError(PROVIDER, 'tts', `Cartesia TTS error${status > 0 ? ` ${status}` : ''}: ${this.redact(text || 'unknown error')}`, {
      retryable: status === 0 || status >= 500 || status === 429,
    });
  }

  lostError(link: Link, cause?: unknown): ProviderError {
    const why = link.lastError === '' ? '' : `: ${this.redact(link.lastError)}`;
    return new ProviderError(PROVIDER, 'tts', `Cartesia TTS connection to ${this.host} was lost${why}`, { cause, retryable: true });
  }

  private connectError(err: unknown): ProviderError {
    const detail = this.redact(errorText(err));
    const status = /Unexpected server response: (\d+)/.exec(detail)?.[1];
    if (status === '401' || status === '403') {
      return new ProviderError(PROVIDER, 'tts', `Cartesia TTS rejected the API key at ${this.host} (HTTP ${status}): check the Cartesia API key`, {
        cause: err,
        retryable: false,
      });
    }
    return new ProviderError(PROVIDER, 'tts', `Cartesia TTS cannot connect to ${this.host}: ${detail}`, { cause: err, retryable: true });
  }

  private redact(text: string): string {
    const key = this.settings.apiKey;
    return key.length >= 4 ? text.split(key).join('***') : text;
  }
}

class CartesiaTurn implements TtsTurn {
  readonly contextId = randomUUID();
  link: Link | null = null;
  finished = false;
  private ended = false;
  private sentAny = false;
  /** A request went out and nothing came back yet: a silent server now is a stall. */
  private awaitingReply = false;
  private failure: ProviderError | null = null;
  private readonly queue: TtsEvent[] = [];
  private wake: (() => void) | null = null;
  private iterated = false;
  /** An odd trailing byte of a chunk, prepended to the next so audio events stay whole samples. */
  private carry: Buffer | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  private readonly onAbort = (): void => this.abort();

  constructor(
    private readonly session: CartesiaSession,
    private readonly signal: AbortSignal,
    private readonly stallTimeoutMs: number,
  ) {
    if (signal.aborted) this.finish(null);
    else signal.addEventListener('abort', this.onAbort, { once: true });
  }

  say(text: string): void {
    if (this.ended || this.finished || text.trim() === '') return;
    // Continuations are concatenated as sent: the pieces must keep their spaces ("Hello." + "How" is one word).
    const transcript = /\s$/.test(text) ? text : `${text} `;
    this.sentAny = true;
    this.awaitingReply = true;
    this.session.send(this, this.session.request(this.contextId, transcript, true));
    this.armStallTimer();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.finished) return;
    if (!this.sentAny) {
      this.finish(null);
      return;
    }
    // Cartesia's end of input: an empty transcript with continue:false; the server answers `done` after the audio.
    this.session.send(this, this.session.request(this.contextId, '', false));
    this.armStallTimer();
  }

  async *events(): AsyncGenerator<TtsEvent> {
    if (this.iterated) throw new Error('TtsTurn.events() can be iterated only once');
    this.iterated = true;
    try {
      for (;;) {
        const event = this.queue.shift();
        if (event !== undefined) {
          yield event;
          continue;
        }
        if (this.finished) {
          if (this.failure !== null) throw this.failure;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      // The consumer stopped early (break/throw): nobody will play the rest, so the context is cancelled.
      if (!this.finished) this.abort();
    }
  }

  onServerEvent(event: WebsocketResponse): void {
    if (this.finished) return;
    this.awaitingReply = false;
    switch (event.type) {
      case 'chunk': {
        const pcm = this.wholeSamples(chunkBytes(event));
        if (pcm.length > 0) this.push({ type: 'audio', pcm });
        break;
      }
      case 'timestamps': {
        const ts = event.word_timestamps;
        if (ts != null && Array.isArray(ts.words) && Array.isArray(ts.start)) {
          const words = ts.words.flatMap((text, i) => {
            const start = ts.start[i];
            return typeof text === 'string' && typeof start === 'number' ? [{ text, start }] : [];
          });
          if (words.length > 0) this.push({ type: 'words', words });
        }
        break;
      }
      case 'done':
        this.finish(null);
        return;
      case 'error':
        this.finish(this.session.serverError(event));
        return;
      default:
        break; // flush_done, phoneme_timestamps: not requested, nothing to do
    }
    this.armStallTimer();
  }

  /** Ends the event stream after the events already queued (the turn's last audio, then the error if any). */
  finish(error: ProviderError | null): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = error;
    this.clearStallTimer();
    this.signal.removeEventListener('abort', this.onAbort);
    this.session.forget(this);
    this.wakeUp();
  }

  /** Barge-in: Cartesia cancels the context; nothing more of this turn may be played, not even what is queued. */
  private abort(): void {
    if (this.finished) return;
    if (this.sentAny) this.session.cancel(this);
    this.discard();
  }

  /** Ends the stream at once, dropping queued audio (an abort, or the session closing). */
  discard(): void {
    this.queue.length = 0;
    this.finish(null);
  }

  private push(event: TtsEvent): void {
    this.queue.push(event);
    this.wakeUp();
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private wholeSamples(bytes: Buffer): Buffer {
    let buf = bytes;
    if (this.carry !== null) {
      buf = Buffer.concat([this.carry, buf]);
      this.carry = null;
    }
    if (buf.length % 2 === 1) {
      this.carry = Buffer.from(buf.subarray(buf.length - 1));
      buf = buf.subarray(0, buf.length - 1);
    }
    return buf;
  }

  private armStallTimer(): void {
    if (this.finished || !(this.awaitingReply || this.ended)) {
      this.clearStallTimer();
      return;
    }
    if (this.stallTimer !== null) {
      this.stallTimer.refresh();
      return;
    }
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (this.finished) return;
      this.session.cancel(this);
      this.finish(new ProviderError(PROVIDER, 'tts', `Cartesia TTS stalled: no reply for ${this.stallTimeoutMs} ms`, { retryable: true }));
    }, this.stallTimeoutMs);
  }

  private clearStallTimer(): void {
    if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }
}

/** The chunk's PCM: the SDK already decoded `data` into `audio` (a Uint8Array) on receipt. */
function chunkBytes(event: WebsocketResponse.Chunk): Buffer {
  const audio = event.audio;
  if (audio instanceof Uint8Array) return Buffer.from(audio.buffer, audio.byteOffset, audio.byteLength);
  return typeof event.data === 'string' ? Buffer.from(event.data, 'base64') : Buffer.alloc(0);
}

function hostOf(baseURL: string): string {
  try {
    return new URL(baseURL).host;
  } catch {
    return '';
  }
}

/** ws reports a failed handshake as an ErrorEvent (message + error), other paths as an Error. */
function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'object' && err !== null && 'message' in err && typeof err.message === 'string') return err.message;
  return String(err);
}
