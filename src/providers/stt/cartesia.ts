// Cartesia streaming STT (`stt_type` cartesia) through the official SDK's realtime socket
// (`client.stt.manualFinalize.websocket()` of `@cartesia/cartesia-js` 4.2, endpoint `/stt/websocket`): 16 kHz
// s16le in as binary frames, transcripts out. The shared state machine (dial deadline, one reconnect, goodbye,
// teardown) is LiveSttStream; this file is only the SDK adaptation.
//
// Facts about the SDK and protocol this module is built around (SDK source and Cartesia's STT API reference):
// - The URL is `<base>/stt/websocket?model=…&encoding=pcm_s16le&sample_rate=16000&language=xx` (http→ws,
//   https→wss); the Node client sends `Authorization: Bearer <key>` and `cartesia-version` as upgrade headers.
// - `ink-whisper` finalizes a transcript on its own after a silence (`max_silence_duration_secs`); the `finalize`
//   text command forces it. The caller's pauses are real silence on a phone line, so no command is needed.
// - Replies are JSON: `{"type":"transcript","text","is_final"}` where `text` is the delta since the last final,
//   `{"type":"flush_done"}`, `{"type":"done"}` (after the `close` command, which flushes and ends the session) and
//   `{"type":"error","status_code","title","message"}`. `language` takes ISO 639-1 (`en`, not `en-US`).
// - The SDK's ESM build cannot load its `ws` peer on Node 20; its CommonJS build can (loaded through require).
//   It reconnects only when asked to (`reconnect.onReconnecting`): we never ask, the stream owns its one reconnect.
// - The SDK emits `error` for every `{"type":"error"}` message and socket error, and turns an `error` with no
//   listener into an unhandled rejection: a listener is always bound. A text frame that is not JSON comes as `raw`.

import { createRequire } from 'node:module';
import type { WebSocket } from 'ws';

import { ProviderError } from '../../errors.js';
import { hostOf, providerFailure, redactorFor } from '../base/failure.js';
import { languageCode } from '../tts/language.js';
import type { SttOptions, SttProvider, SttStream } from '../types.js';
import { LiveSttStream, socketFailure, watchWebSocket, isWsOpen, type LiveDialer, type LiveHandlers, type LiveMessage, type LiveSocket } from './live-stream.js';

export interface CartesiaSttSettings {
  apiKey: string;
  /** An `http(s)://` or `ws(s)://` base; '' = the SDK default (https://api.cartesia.ai). */
  baseUrl: string;
  /** Default `ink-whisper` (the realtime model that takes a language and finalizes on silence). */
  model?: string;
  /** Default 5000. */
  connectTimeoutMs?: number;
  /** close(): wait this long for Cartesia's `done` and close after the `close` command. Default 1000. */
  closeGraceMs?: number;
  /** Default 5000 ms of audio kept while reconnecting. */
  reconnectBufferMs?: number;
  /** Default 60000. */
  stableAfterMs?: number;
}

const PROVIDER = 'cartesia';
const DEFAULT_BASE_URL = 'https://api.cartesia.ai';
const WHAT = 'Cartesia live transcription';

type CartesiaSdk = typeof import('@cartesia/cartesia-js');
type CartesiaClient = InstanceType<CartesiaSdk['Cartesia']>;
type SttSocket = ReturnType<CartesiaClient['stt']['manualFinalize']['websocket']>;

let sdk: CartesiaSdk | undefined;
function loadSdk(): CartesiaSdk {
  sdk ??= createRequire(import.meta.url)('@cartesia/cartesia-js') as CartesiaSdk;
  return sdk;
}

export function createCartesiaStt(settings: CartesiaSttSettings): SttProvider {
  const baseURL = settings.baseUrl === '' ? DEFAULT_BASE_URL : settings.baseUrl;
  const cfg = {
    connectTimeoutMs: settings.connectTimeoutMs ?? 5000,
    closeGraceMs: settings.closeGraceMs ?? 1000,
    reconnectBufferMs: settings.reconnectBufferMs ?? 5000,
    stableAfterMs: settings.stableAfterMs ?? 60_000,
  };
  const redact = redactorFor(settings.apiKey);
  let client: CartesiaClient | undefined;

  return {
    name: PROVIDER,
    async open(options: SttOptions): Promise<SttStream> {
      if (settings.apiKey === '') throw new ProviderError(PROVIDER, 'stt', 'Cartesia STT needs an API key: set CARTESIA_API_KEY');
      if (!/^(https?|wss?):\/\//.test(baseURL) || hostOf(baseURL) === '') {
        throw new ProviderError(PROVIDER, 'stt', 'Cartesia STT base URL must be an http(s):// or ws(s):// URL (CARTESIA_BASE_URL)');
      }
      client ??= new (loadSdk().Cartesia)({ apiKey: settings.apiKey, baseURL });
      const c = client;
      const host = hostOf(baseURL);
      const language = languageCode(options.language);
      const dialer: LiveDialer = {
        provider: PROVIDER,
        host,
        what: WHAT,
        dial: (h) => Promise.resolve(dial(c, { model: settings.model ?? 'ink-whisper', language }, h, (raw) => socketFailure(PROVIDER, WHAT, host, 'CARTESIA_API_KEY', raw, redact), redact)),
      };
      const stream = new LiveSttStream(dialer, cfg, options);
      await stream.start();
      return stream;
    },
  };
}

function dial(client: CartesiaClient, p: { model: string; language: string }, h: LiveHandlers, failure: (raw: string) => ProviderError, redact: (t: string) => string): LiveSocket {
  const ws: SttSocket = client.stt.manualFinalize.websocket({
    model: p.model,
    encoding: 'pcm_s16le',
    sample_rate: 16_000,
    // The SDK types `language` as 'en' only; the endpoint takes any ISO 639-1 code it supports.
    ...(p.language === '' ? {} : { language: p.language as 'en' }),
  });
  const raw = (ws.socket as unknown as { platformSocket: WebSocket }).platformSocket;
  const watch = watchWebSocket(raw, h, failure);
  const onEvent = (event: unknown): void => h.message(readCartesiaMessage(event, redact));
  const onRaw = (data: unknown): void => h.message({ kind: 'malformed', what: typeof data === 'string' ? 'a text frame that is not JSON' : 'an unexpected binary frame' });
  // Socket errors reach watchWebSocket and API errors come as `event`: this listener only keeps the SDK quiet.
  const onError = (): void => {};
  ws.on('event', onEvent);
  ws.on('raw', onRaw);
  ws.on('error', onError);
  return {
    get isOpen() {
      return isWsOpen(raw);
    },
    get bufferedAmount() {
      return raw.bufferedAmount;
    },
    send: (pcm) => ws.sendRaw(pcm),
    goodbye: () => ws.send('close'),
    destroy: () => {
      ws.off('event', onEvent);
      ws.off('raw', onRaw);
      watch.destroy();
    },
  };
}

/** One parsed JSON message from the socket. */
export function readCartesiaMessage(event: unknown, redact: (t: string) => string): LiveMessage {
  if (typeof event !== 'object' || event === null) return { kind: 'malformed', what: 'a message that is not a JSON object' };
  const m = event as Record<string, unknown>;
  switch (m.type) {
    case 'transcript':
      if (typeof m.text !== 'string' || typeof m.is_final !== 'boolean') return { kind: 'malformed', what: 'a transcript without text or is_final' };
      return { kind: 'transcript', text: m.text.trim(), final: m.is_final };
    case 'flush_done':
    case 'done':
    case 'connected':
      return { kind: 'ignore' };
    case 'error': {
      const status = typeof m.status_code === 'number' ? m.status_code : undefined;
      const text = [m.title, m.message].filter((x): x is string => typeof x === 'string' && x !== '').join(': ') || 'unknown error';
      return { kind: 'error', err: providerFailure(PROVIDER, 'stt', 'server', `Cartesia reported an error${status === undefined ? '' : ` (${status})`}: ${redact(text)}`, status === undefined ? {} : { status }) };
    }
    default:
      return { kind: 'malformed', what: `a message of unknown type ${JSON.stringify(String(m.type)).slice(0, 40)}` };
  }
}
