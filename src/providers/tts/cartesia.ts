// Cartesia TTS through the official SDK's WebSocket (`@cartesia/cartesia-js` v4): one socket per call session,
// one Cartesia context per bot turn, so a barge-in cancels exactly that turn's generation (SPEC §3.5, §3.4).

import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { ClientOptions as WsClientOptions } from 'ws';
import type { GenerationRequest, WebsocketResponse } from '@cartesia/cartesia-js/resources/tts';
import type { TTSWS } from '@cartesia/cartesia-js/resources/tts/ws';
import { ProviderError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { describeCause, hostOf, providerFailure, redactorFor } from '../base/failure.js';
import { TtsSessionBase, TtsTurnBase } from '../base/tts.js';
import { languageCode } from './language.js';
import type { TtsProvider, TtsSession, TtsSessionOptions, TtsTurnOptions } from '../types.js';

export interface CartesiaTtsSettings {
  apiKey: string;
  /** An `http(s)://` base; '' = the SDK default (https://api.cartesia.ai). The SDK always dials `wss://` on it. */
  baseUrl: string;
  /** Default 'sonic-3'. */
  model?: string;
  /** Test hook for `ws`: the SDK always dials `wss://`; a plain local server is reached through `net.connect`. */
  createConnection?: WsClientOptions['createConnection'];
  /** A turn fails (retryable) when the server owes a reply and sends nothing for this long. Default 10 000 ms. */
  stallTimeoutMs?: number;
  /** The WebSocket upgrade must complete within this time. Default 10 000 ms. */
  connectTimeoutMs?: number;
}

const PROVIDER = 'cartesia';
const SAMPLE_RATE = 16_000;
const DEFAULT_BASE_URL = 'https://api.cartesia.ai';
// The SDK's send() silently opens a *new* socket when the old one is CLOSING/CLOSED, which
// would escape our listeners and close(): never call it unless the socket is OPEN (ws readyState 1).
const WS_OPEN = 1;
const CLOSE_WAIT_MS = 1000; // for the server's close frame, then destroyed (ws would otherwise wait 30 s)

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

/** One WebSocket connection, replaced after it dies. `chain` serializes sends so a context's requests stay in
 *  order; `lastError` (from the socket's `error` event) explains a later close. */
interface Link {
  ws: TTSWS;
  ready: Promise<void>;
  open: boolean;
  dead: boolean;
  chain: Promise<void>;
  lastError: string;
  closed: Promise<void>;
  detach(): void;
}

class CartesiaSession extends TtsSessionBase<CartesiaTurn> {
  readonly name = PROVIDER;
  readonly sampleRate = SAMPLE_RATE;
  private readonly client: CartesiaClient;
  private readonly host: string;
  private readonly model: string;
  private readonly log: Logger;
  private link: Link | null = null;
  private readonly redact: (text: string) => string;

  constructor(
    private readonly settings: CartesiaTtsSettings,
    private readonly options: TtsSessionOptions,
  ) {
    super(options);
    const baseURL = settings.baseUrl === '' ? DEFAULT_BASE_URL : settings.baseUrl;
    // The base URL is passed explicitly so the SDK never falls back to reading CARTESIA_BASE_URL itself.
    this.client = new (loadSdk().Cartesia)({ apiKey: settings.apiKey, baseURL });
    this.host = hostOf(baseURL);
    this.model = settings.model ?? 'sonic-3';
    this.log = options.log;
    this.redact = redactorFor(settings.apiKey);
  }

  async connectFirst(): Promise<void> {
    if (this.options.signal.aborted) throw new ProviderError(PROVIDER, 'tts', 'Cartesia TTS session aborted before it opened');
    await this.ensureLink().ready;
  }

  protected createTurn(options: TtsTurnOptions): CartesiaTurn {
    return new CartesiaTurn(this, options.signal, this.settings.stallTimeoutMs ?? 10_000);
  }

  protected override turnStarted(): void {
    // A socket lost in an earlier turn (or while idle) is replaced now, so it is ready by the first say().
    this.ensureLink().ready.catch(() => undefined);
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
    // Cartesia takes ISO 639-1 codes: ai-manager's `en-US` becomes `en`.
    const language = languageCode(this.options.language);
    if (language !== '') req.language = language;
    return req;
  }

  /** Sends one message for a turn on the current link; a failure to connect or send fails that turn. */
  send(turn: CartesiaTurn, message: GenerationRequest): void {
    if (this.isClosing) return;
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

  protected release(): Promise<void> {
    const link = this.link;
    this.link = null;
    return link === null ? Promise.resolve() : this.dropLink(link);
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
        // The socket is dropped with it, so for the turns on it this is a lost connection: the next turn redials.
        const why = `Cartesia TTS sent a malformed message on ${this.host}: ${err.message}`;
        void this.dropLink(link, providerFailure(PROVIDER, 'tts', 'network', why, { cause: err }));
      }
    };
    const onClose = (event: { code?: number }): void => {
      ws.socket.removeEventListener('close', onClose);
      resolveClosed();
      // Before the handshake completed, the rejected connect() reports the failure (with the HTTP status).
      if (link.dead || !link.open) return;
      const code = event.code ?? 1006;
      const why = link.lastError === '' ? '' : `: ${link.lastError}`;
      void this.dropLink(link, providerFailure(PROVIDER, 'tts', 'network', `Cartesia TTS connection to ${this.host} closed (code ${code})${why}`));
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
        this.connectFailed(error);
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
      for (const turn of [...this.turns]) if (turn.link === link) turn.finish(error);
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
      if (event.type === 'error') for (const turn of [...this.turns]) turn.finish(this.serverError(event));
      return;
    }
    // Unknown ids are cancelled or finished contexts: Cartesia may still send chunks it had already generated.
    for (const turn of this.turns) if (turn.contextId === contextId) turn.onServerEvent(event);
  }

  serverError(event: WebsocketResponse.Error): ProviderError {
    const raw = event as WebsocketResponse.Error & { error?: unknown };
    const text = [event.title, event.message, typeof raw.error === 'string' ? raw.error : undefined]
      .filter((s): s is string => typeof s === 'string' && s !== '')
      .join(': ');
    const status = typeof event.status_code === 'number' ? event.status_code : 0;
    return providerFailure(PROVIDER, 'tts', 'server', `Cartesia TTS error${status > 0 ? ` ${status}` : ''}: ${this.redact(text || 'unknown error')}`, { status });
  }

  lostError(link: Link, cause?: unknown): ProviderError {
    const why = link.lastError === '' ? '' : `: ${this.redact(link.lastError)}`;
    return providerFailure(PROVIDER, 'tts', 'network', `Cartesia TTS connection to ${this.host} was lost${why}`, { cause });
  }

  private connectError(err: unknown): ProviderError {
    const detail = this.redact(describeCause(err));
    const status = /Unexpected server response: (\d+)/.exec(detail)?.[1];
    if (status === '401' || status === '403') {
      return providerFailure(PROVIDER, 'tts', 'http', `Cartesia TTS rejected the API key at ${this.host} (HTTP ${status}): check the Cartesia API key`, {
        cause: err,
        status: Number(status),
      });
    }
    const where = `Cartesia TTS cannot connect to ${this.host}: ${detail}`;
    return status === undefined
      ? providerFailure(PROVIDER, 'tts', 'network', where, { cause: err })
      : providerFailure(PROVIDER, 'tts', 'http', where, { cause: err, status: Number(status) });
  }
}

class CartesiaTurn extends TtsTurnBase {
  readonly contextId = randomUUID();
  link: Link | null = null;

  constructor(
    private readonly session: CartesiaSession,
    signal: AbortSignal,
    stallTimeoutMs: number,
  ) {
    super(PROVIDER, signal, stallTimeoutMs);
  }

  protected sendText(text: string): void {
    // Continuations are concatenated as sent: the pieces must keep their spaces ("Hello." + "How" is one word).
    const transcript = /\s$/.test(text) ? text : `${text} `;
    this.session.send(this, this.session.request(this.contextId, transcript, true));
    this.expectReply();
  }

  protected sendEnd(): void {
    // Cartesia's end of input: an empty transcript with continue:false; the server answers `done` after the audio.
    this.session.send(this, this.session.request(this.contextId, '', false));
    this.expectReply();
  }

  protected cancelProvider(): void {
    this.session.cancel(this);
  }

  protected override stallWhat(): string {
    return 'Cartesia TTS';
  }

  onServerEvent(event: WebsocketResponse): void {
    if (this.finished) return;
    switch (event.type) {
      case 'chunk':
        this.pushAudio(chunkBytes(event));
        break;
      case 'timestamps': {
        const ts = event.word_timestamps;
        if (ts != null && Array.isArray(ts.words) && Array.isArray(ts.start)) {
          this.pushWords(
            ts.words.flatMap((text, i) => {
              const start = ts.start[i];
              return typeof text === 'string' && typeof start === 'number' ? [{ text, start }] : [];
            }),
          );
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
    this.heardFromProvider();
  }
}

/** The chunk's PCM: the SDK already decoded `data` into `audio` (a Uint8Array) on receipt. */
function chunkBytes(event: WebsocketResponse.Chunk): Buffer {
  const audio = event.audio;
  if (audio instanceof Uint8Array) return Buffer.from(audio.buffer, audio.byteOffset, audio.byteLength);
  return typeof event.data === 'string' ? Buffer.from(event.data, 'base64') : Buffer.alloc(0);
}
