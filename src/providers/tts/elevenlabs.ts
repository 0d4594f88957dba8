// ElevenLabs TTS (SPEC §3.5; ai-manager's default tts_type) over its documented multi-context WebSocket
// (`/v1/text-to-speech/{voice_id}/multi-stream-input`): one socket per call session, one context per bot turn,
// so a barge-in closes exactly that turn's context. Messages are encoded and checked with the official SDK's own
// wire schemas (`@elevenlabs/elevenlabs-js` has the types and serializers of this protocol, but no client for it).
//
// Protocol facts this adapter is built around (the SDK's serializers and ElevenLabs' API reference):
// - Requests are snake_case (`context_id`, `close_context`, `close_socket`), replies camelCase (`contextId`,
//   `isFinal`, `alignment.charStartTimesMs`). Audio arrives base64 in `audio`, as `output_format` asked
//   (`pcm_16000`: s16le mono 16 kHz).
// - A context starts with `{"text":" "}`; each sentence is sent with `flush: true` so it is spoken at once
//   rather than held for more text; `close_context` ends it: audio already flushed is still delivered, then
//   `{"isFinal":true}`. A closed context's late audio is ignored (its turn is gone).
// - `alignment` timestamps are relative to the audio chunk that carries them: the turn adds the audio already
//   delivered before that chunk, so each word's start is seconds from the turn's first sample.
// - Errors come as a JSON object with `error`/`message` (then usually a close); a refused key is an HTTP 401/403
//   at the upgrade. The server closes an idle socket (`inactivity_timeout`, at most 180 s): the next turn redials.

import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import WebSocket, { type ClientOptions } from 'ws';
import type { ElevenLabs } from '@elevenlabs/elevenlabs-js';

import { ProviderError } from '../../errors.js';
import { describeCause, hostOf, providerFailure, redactorFor } from '../base/failure.js';
import { TtsSessionBase, TtsTurnBase } from '../base/tts.js';
import type { TtsProvider, TtsSession, TtsSessionOptions, TtsTurnOptions, TtsWord } from '../types.js';
import { languageCode } from './language.js';

export interface ElevenLabsTtsSettings {
  apiKey: string;
  /** '' = the SDK's production environment (https://api.elevenlabs.io); else an http(s):// or ws(s):// base. */
  baseUrl: string;
  /** Default `eleven_flash_v2_5` (the lowest-latency model that takes a language code). */
  model?: string;
  /** A turn fails (retryable) when the server owes a reply and sends nothing for this long. Default 10 000 ms. */
  stallTimeoutMs?: number;
  /** The WebSocket upgrade must complete within this time. Default 10 000 ms. */
  connectTimeoutMs?: number;
}

const PROVIDER = 'elevenlabs';
const SAMPLE_RATE = 16_000;
/** ai-manager's default voice ("Sarah"), used when neither the call nor DEFAULT_TTS_VOICE_ID names one. */
export const ELEVENLABS_DEFAULT_VOICE = 'EXAVITQu4vr4xnSDxMaL';
const VOICE_ID = /^[A-Za-z0-9]{1,64}$/;
const CLOSE_WAIT_MS = 1000;

interface Sdk {
  environment: { ElevenLabsEnvironment: { Production: string } };
  wire: Serializers;
}
interface Serializers {
  SendMessageMulti: { jsonOrThrow(message: ElevenLabs.SendMessageMulti): unknown };
  ReceiveMessageMulti: { parse(raw: unknown, options?: { unrecognizedObjectKeys?: 'passthrough' | 'strip' }): { ok: boolean; value?: ElevenLabs.ReceiveMessageMulti } };
}
let sdk: Sdk | undefined;
/**
 * The SDK's wire schemas and environments live in its CommonJS tree (no `exports` map) and are loaded through
 * require, on first use: its main entry pulls in every API of the SDK, seconds of startup for nothing here.
 */
function loadSdk(): Sdk {
  if (sdk === undefined) {
    const requireCjs = createRequire(import.meta.url);
    // Only this socket's two schemas: the whole serialization tree takes seconds to load (measured 10 s under load).
    const schemas = '@elevenlabs/elevenlabs-js/serialization/resources/v1TextToSpeechVoiceIdMultiStreamInput/types';
    sdk = {
      environment: requireCjs('@elevenlabs/elevenlabs-js/environments') as Sdk['environment'],
      wire: {
        ...(requireCjs(`${schemas}/SendMessageMulti`) as Pick<Serializers, 'SendMessageMulti'>),
        ...(requireCjs(`${schemas}/ReceiveMessageMulti`) as Pick<Serializers, 'ReceiveMessageMulti'>),
      },
    };
  }
  return sdk;
}
const wire = (): Serializers => loadSdk().wire;

export function createElevenLabsTts(settings: ElevenLabsTtsSettings): TtsProvider {
  return {
    name: PROVIDER,
    async open(options: TtsSessionOptions): Promise<TtsSession> {
      if (settings.apiKey === '') throw providerFailure(PROVIDER, 'tts', 'refused', 'ElevenLabs TTS needs an API key: set ELEVENLABS_API_KEY');
      const voice = options.voiceId === '' ? ELEVENLABS_DEFAULT_VOICE : options.voiceId;
      if (!VOICE_ID.test(voice)) throw providerFailure(PROVIDER, 'tts', 'refused', `ElevenLabs voice id ${JSON.stringify(voice.slice(0, 80))} is not a voice id`);
      const url = socketUrl(settings, voice, options.language);
      const session = new ElevenLabsSession(settings, url, options);
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

function socketUrl(settings: ElevenLabsTtsSettings, voice: string, language: string): URL {
  const base = settings.baseUrl === '' ? loadSdk().environment.ElevenLabsEnvironment.Production : settings.baseUrl;
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw providerFailure(PROVIDER, 'tts', 'refused', 'ELEVENLABS_BASE_URL must be an http(s):// or ws(s):// URL');
  }
  if (!/^(https?|wss?):$/.test(url.protocol)) throw providerFailure(PROVIDER, 'tts', 'refused', 'ELEVENLABS_BASE_URL must be an http(s):// or ws(s):// URL');
  url.protocol = url.protocol === 'https:' || url.protocol === 'wss:' ? 'wss:' : 'ws:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/text-to-speech/${voice}/multi-stream-input`;
  url.searchParams.set('model_id', settings.model ?? 'eleven_flash_v2_5');
  url.searchParams.set('output_format', `pcm_${SAMPLE_RATE}`);
  url.searchParams.set('inactivity_timeout', '180');
  const code = languageCode(language);
  if (code !== '') url.searchParams.set('language_code', code);
  return url;
}

/** One socket; replaced by a fresh one (at the next turn) after it dies. */
interface Link {
  ws: WebSocket;
  ready: Promise<void>;
  dead: boolean;
  closed: Promise<void>;
}

class ElevenLabsSession extends TtsSessionBase<ElevenLabsTurn> {
  readonly name = PROVIDER;
  readonly sampleRate = SAMPLE_RATE;
  private link: Link | null = null;
  private readonly host: string;
  private readonly redact: (text: string) => string;

  constructor(
    private readonly settings: ElevenLabsTtsSettings,
    private readonly url: URL,
    private readonly options: TtsSessionOptions,
  ) {
    super(options);
    this.host = hostOf(url.href);
    this.redact = redactorFor(settings.apiKey);
  }

  async connectFirst(): Promise<void> {
    if (this.options.signal.aborted) throw providerFailure(PROVIDER, 'tts', 'refused', 'ElevenLabs TTS session aborted before it opened');
    await this.ensureLink().ready;
  }

  protected createTurn(options: TtsTurnOptions): ElevenLabsTurn {
    return new ElevenLabsTurn(this, options.signal, this.settings.stallTimeoutMs ?? 10_000);
  }

  protected override turnStarted(): void {
    // A socket the server closed while the bot was silent is redialled now, so it is ready by the first say().
    this.ensureLink().ready.catch(() => undefined);
  }

  /** Sends one message of a turn, in order, once its socket is open; a lost socket fails that turn. */
  send(turn: ElevenLabsTurn, message: ElevenLabs.SendMessageMulti): void {
    if (this.isClosing) return;
    const link = (turn.link ??= this.ensureLink());
    if (link.dead) {
      turn.finish(this.lost());
      return;
    }
    const text = JSON.stringify(wire().SendMessageMulti.jsonOrThrow(message));
    // `ready` callbacks run in the order they were registered: the messages of a context keep their order.
    link.ready.then(
      () => {
        if (turn.finished && !('closeContext' in message)) return;
        if (link.dead || link.ws.readyState !== WebSocket.OPEN) {
          if (!turn.finished) turn.finish(this.lost());
          return;
        }
        link.ws.send(text);
      },
      (err: unknown) => turn.finish(err instanceof ProviderError ? err : this.lost()),
    );
  }

  protected release(): Promise<void> {
    const link = this.link;
    this.link = null;
    if (link === null) return Promise.resolve();
    if (link.ws.readyState === WebSocket.OPEN) link.ws.send(JSON.stringify(wire().SendMessageMulti.jsonOrThrow({ closeSocket: true })));
    return this.drop(link);
  }

  private ensureLink(): Link {
    if (this.link === null || this.link.dead) this.link = this.connect();
    return this.link;
  }

  private connect(): Link {
    const wsOptions: ClientOptions = { handshakeTimeout: this.settings.connectTimeoutMs ?? 10_000, headers: { 'xi-api-key': this.settings.apiKey } };
    const ws = new WebSocket(this.url, wsOptions);
    let opened = false;
    let lastError = '';
    const link: Link = { ws, ready: Promise.resolve(), dead: false, closed: new Promise((resolve) => ws.once('close', () => resolve())) };
    link.ready = new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        opened = true;
        resolve();
      });
      ws.on('error', (err) => {
        lastError = err.message;
        if (opened) return;
        const error = this.connectError(err);
        this.connectFailed(error);
        reject(error);
      });
    });
    // Turns await `ready` themselves; this keeps an unobserved failure from being an unhandled rejection.
    link.ready.catch(() => void this.drop(link));
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (!link.dead) this.onMessage(link, data, isBinary);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (link.dead || !opened) return;
      const why = reason.length > 0 ? `: ${this.redact(reason.toString('utf8').slice(0, 200))}` : lastError === '' ? '' : `: ${this.redact(lastError)}`;
      this.failTurns(link, providerFailure(PROVIDER, 'tts', 'network', `ElevenLabs TTS connection to ${this.host} closed (code ${code})${why}`));
      void this.drop(link);
    });
    return link;
  }

  private onMessage(link: Link, data: WebSocket.RawData, isBinary: boolean): void {
    let raw: unknown;
    try {
      if (isBinary) throw new Error('binary frame');
      raw = JSON.parse(rawText(data));
    } catch {
      this.failTurns(link, providerFailure(PROVIDER, 'tts', 'malformed', `ElevenLabs TTS sent a message that is not JSON on ${this.host}`));
      return;
    }
    if (typeof raw !== 'object' || raw === null) return;
    const m = raw as Record<string, unknown>;
    const contextId = typeof m.contextId === 'string' ? m.contextId : typeof m.context_id === 'string' ? m.context_id : '';
    const turn = [...this.turns].find((t) => t.contextId === contextId);
    if ('error' in m || ('message' in m && !('audio' in m))) {
      const err = this.serverError(m);
      if (turn !== undefined) turn.finish(err);
      else if (contextId === '') this.failTurns(link, err);
      return;
    }
    // Unknown ids are closed contexts: ElevenLabs may still send audio it had already generated.
    if (turn === undefined) return;
    if (m.isFinal === true) {
      turn.finish(null);
      return;
    }
    const parsed = wire().ReceiveMessageMulti.parse(raw, { unrecognizedObjectKeys: 'strip' });
    if (!parsed.ok || parsed.value === undefined || !('audio' in parsed.value)) {
      turn.finish(providerFailure(PROVIDER, 'tts', 'malformed', `ElevenLabs TTS sent a message of unknown shape on ${this.host}`));
      return;
    }
    turn.onAudio(parsed.value);
  }

  private failTurns(link: Link, err: ProviderError): void {
    for (const turn of [...this.turns]) if (turn.link === link) turn.finish(err);
  }

  private serverError(m: Record<string, unknown>): ProviderError {
    const text = [m.error, m.message].filter((s): s is string => typeof s === 'string' && s !== '').join(': ');
    const status = typeof m.code === 'number' ? m.code : undefined;
    return providerFailure(PROVIDER, 'tts', 'server', `ElevenLabs TTS error: ${this.redact(text || 'unknown error')}`, status === undefined ? {} : { status });
  }

  private lost(): ProviderError {
    return providerFailure(PROVIDER, 'tts', 'network', `ElevenLabs TTS connection to ${this.host} was lost`);
  }

  private connectError(err: unknown): ProviderError {
    const detail = this.redact(describeCause(err));
    const status = /Unexpected server response: (\d{3})/.exec(detail)?.[1];
    if (status === '401' || status === '403') {
      return providerFailure(PROVIDER, 'tts', 'http', `ElevenLabs TTS rejected the API key at ${this.host} (HTTP ${status}): check ELEVENLABS_API_KEY`, { status: Number(status) });
    }
    const message = `ElevenLabs TTS cannot connect to ${this.host}: ${detail}`;
    return status === undefined ? providerFailure(PROVIDER, 'tts', 'network', message) : providerFailure(PROVIDER, 'tts', 'http', message, { status: Number(status) });
  }

  /** Marks a link dead and closes its socket, waiting a bounded time for the close handshake. */
  private drop(link: Link): Promise<void> {
    if (link.dead) return link.closed;
    link.dead = true;
    if (this.link === link) this.link = null;
    if (link.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    if (link.ws.readyState === WebSocket.OPEN) link.ws.close(1000, 'session closed');
    else link.ws.terminate();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        link.ws.terminate();
        resolve();
      }, CLOSE_WAIT_MS);
      void link.closed.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

class ElevenLabsTurn extends TtsTurnBase {
  readonly contextId = randomUUID();
  link: Link | null = null;
  private started = false;
  /** Audio bytes delivered before the current chunk: the offset of its chunk-relative alignment. */
  private audioBytes = 0;
  /** A word cut by a chunk boundary: its text so far and its start (seconds in the turn). */
  private partial: TtsWord | null = null;

  constructor(
    private readonly session: ElevenLabsSession,
    signal: AbortSignal,
    stallTimeoutMs: number,
  ) {
    super(PROVIDER, signal, stallTimeoutMs);
  }

  protected sendText(text: string): void {
    if (!this.started) {
      this.started = true;
      this.session.send(this, { text: ' ', contextId: this.contextId });
    }
    // ElevenLabs wants each piece to end with a space, or the next piece's first word is glued to this one.
    this.session.send(this, { text: /\s$/.test(text) ? text : `${text} `, contextId: this.contextId, flush: true });
    this.expectReply();
  }

  protected sendEnd(): void {
    this.session.send(this, { contextId: this.contextId, closeContext: true });
    this.expectReply();
  }

  protected cancelProvider(): void {
    if (this.started) this.session.send(this, { contextId: this.contextId, closeContext: true });
  }

  protected override stallWhat(): string {
    return 'ElevenLabs TTS';
  }

  onAudio(message: ElevenLabs.AudioOutputMulti): void {
    if (this.finished) return;
    this.heardFromProvider();
    const offset = this.audioBytes / 2 / SAMPLE_RATE;
    const pcm = Buffer.from(message.audio, 'base64');
    this.audioBytes += pcm.length;
    this.pushAudio(pcm);
    const alignment = message.alignment ?? message.normalizedAlignment;
    if (alignment !== undefined) this.pushWords(this.words(alignment, offset));
  }

  /** Characters → words (split at whitespace); a word still open at the chunk's end waits for the next chunk. */
  private words(alignment: ElevenLabs.Alignment, offset: number): TtsWord[] {
    const chars = alignment.chars ?? [];
    const starts = alignment.charStartTimesMs ?? [];
    const out: TtsWord[] = [];
    let word = this.partial;
    chars.forEach((ch, i) => {
      if (/^\s*$/.test(ch)) {
        if (word !== null && word.text !== '') out.push(word);
        word = null;
        return;
      }
      word ??= { text: '', start: offset + (starts[i] ?? 0) / 1000 };
      word.text += ch;
    });
    this.partial = word;
    return out;
  }

  override finish(error: ProviderError | null): void {
    if (!this.finished && error === null && this.partial !== null && this.partial.text !== '') {
      // The last word of the turn has no space after it.
      this.pushWords([this.partial]);
    }
    this.partial = null;
    super.finish(error);
  }
}

function rawText(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}
