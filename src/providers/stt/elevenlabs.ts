// ElevenLabs streaming STT (`stt_type` elevenlabs) through the official SDK's realtime client
// (`ScribeRealtime.connect()` of `@elevenlabs/elevenlabs-js` 2.73, `client.speechToText.realtime`): 16 kHz PCM in,
// partial and committed transcripts out. The shared state machine (dial deadline, one reconnect, goodbye,
// teardown) is LiveSttStream; this file is only the SDK adaptation.
//
// Facts about the SDK and protocol this module is built around (SDK source and ElevenLabs' API reference):
// - The URL is `<base>/v1/speech-to-text/realtime?model_id=…&commit_strategy=vad&audio_format=pcm_16000
//   &vad_silence_threshold_secs=…&language_code=xx` (https→wss, http→ws) with the key in the `xi-api-key` header.
//   The SDK refuses a silence threshold outside 0.3–3 s before dialling.
// - Audio goes up as JSON text frames `{"message_type":"input_audio_chunk","audio_base_64","commit":false,
//   "sample_rate":16000}`; with `commit_strategy=vad` the server commits a segment when the caller pauses.
// - Replies: `session_started`, `partial_transcript {text}` (the whole uncommitted segment so far),
//   `committed_transcript {text}` (final), and errors as `{message_type: auth_error|quota_exceeded|rate_limited|
//   …, error}`, usually followed by a close. `language_code` takes ISO 639-1/3 (`en`, not `en-US`).
// - The SDK parses every text frame with a bare `JSON.parse` inside the socket's `message` listener: a frame that
//   is not JSON would throw out of the socket handler and kill the process. Its listener is therefore wrapped so
//   such a frame is reported as malformed instead (the SDK's own parsing and dispatch still handle the rest).
// - The SDK re-emits socket errors and error messages as `error` on a Node EventEmitter, which throws when no
//   listener is bound: one is bound for the connection's whole life. It has no reconnect of its own.
// - Only the realtime module is loaded (through require, its CommonJS tree): the SDK's main entry pulls in every API.

import { createRequire } from 'node:module';
import type { WebSocket } from 'ws';

import { ProviderError } from '../../errors.js';
import { hostOf, providerFailure, redactorFor } from '../base/failure.js';
import { languageCode } from '../tts/language.js';
import type { SttOptions, SttProvider, SttStream } from '../types.js';
import { LiveSttStream, isWsOpen, socketFailure, watchWebSocket, type LiveHandlers, type LiveMessage, type LiveSocket } from './live-stream.js';

type RealtimeModule = typeof import('@elevenlabs/elevenlabs-js/wrapper/realtime/index.js');
type Connection = InstanceType<RealtimeModule['RealtimeConnection']>;

export interface ElevenLabsSttSettings {
  apiKey: string;
  /** '' = the SDK's production environment (https://api.elevenlabs.io); else an http(s):// or ws(s):// base. */
  baseUrl: string;
  /** Default `scribe_v2_realtime`. */
  model?: string;
  /**
   * The pause after which ElevenLabs commits a segment (`vad_silence_threshold_secs`, 0.3–3). Default 0.5: the
   * service's own default (1.5 s) would hold every final transcript, and so the end of every turn, that long.
   */
  vadSilenceSecs?: number;
  /** Default 5000. */
  connectTimeoutMs?: number;
  /** close(): wait this long for the server's close after ours. Default 1000. */
  closeGraceMs?: number;
  /** Default 5000 ms of audio kept while reconnecting. */
  reconnectBufferMs?: number;
  /** Default 60000. */
  stableAfterMs?: number;
}

const PROVIDER = 'elevenlabs';
const DEFAULT_BASE_URL = 'https://api.elevenlabs.io';
const WHAT = 'ElevenLabs realtime transcription';

let realtime: RealtimeModule | undefined;
function loadSdk(): RealtimeModule {
  realtime ??= createRequire(import.meta.url)('@elevenlabs/elevenlabs-js/wrapper/realtime/index.js') as RealtimeModule;
  return realtime;
}

export function createElevenLabsStt(settings: ElevenLabsSttSettings): SttProvider {
  const configured = settings.baseUrl === '' ? DEFAULT_BASE_URL : settings.baseUrl.replace(/\/+$/, '');
  const cfg = {
    connectTimeoutMs: settings.connectTimeoutMs ?? 5000,
    closeGraceMs: settings.closeGraceMs ?? 1000,
    reconnectBufferMs: settings.reconnectBufferMs ?? 5000,
    stableAfterMs: settings.stableAfterMs ?? 60_000,
  };
  const redact = redactorFor(settings.apiKey);

  return {
    name: PROVIDER,
    async open(options: SttOptions): Promise<SttStream> {
      if (settings.apiKey === '') throw new ProviderError(PROVIDER, 'stt', 'ElevenLabs STT needs an API key: set ELEVENLABS_API_KEY');
      if (!/^(https?|wss?):\/\//.test(configured) || hostOf(configured) === '') {
        throw new ProviderError(PROVIDER, 'stt', 'ElevenLabs STT base URL must be an http(s):// or ws(s):// URL (ELEVENLABS_BASE_URL)');
      }
      // The SDK derives ws(s):// from http(s):// only.
      const baseUrl = configured.replace(/^ws(s?):\/\//i, 'http$1://');
      const host = hostOf(baseUrl);
      const language = languageCode(options.language);
      const model = settings.model ?? 'scribe_v2_realtime';
      const vadSilenceSecs = settings.vadSilenceSecs ?? 0.5;
      const failure = (raw: string): ProviderError => socketFailure(PROVIDER, WHAT, host, 'ELEVENLABS_API_KEY', raw, redact);
      const stream = new LiveSttStream(
        { provider: PROVIDER, host, what: WHAT, dial: (h) => dial({ apiKey: settings.apiKey, baseUrl, model, language, vadSilenceSecs }, h, failure, redact) },
        cfg,
        options,
      );
      await stream.start();
      return stream;
    },
  };
}

interface DialParams {
  apiKey: string;
  baseUrl: string;
  model: string;
  language: string;
  vadSilenceSecs: number;
}

async function dial(p: DialParams, h: LiveHandlers, failure: (raw: string) => ProviderError, redact: (t: string) => string): Promise<LiveSocket> {
  const sdk = loadSdk();
  const scribe = new sdk.ScribeRealtime({ apiKey: p.apiKey, baseUrl: p.baseUrl });
  const connection: Connection = await scribe.connect({
    modelId: p.model,
    audioFormat: sdk.AudioFormat.PCM_16000,
    sampleRate: 16_000,
    commitStrategy: sdk.CommitStrategy.VAD,
    vadSilenceThresholdSecs: p.vadSilenceSecs,
    ...(p.language === '' ? {} : { languageCode: p.language }),
  });
  const raw = (connection as unknown as { websocket: WebSocket }).websocket;
  guardParsing(raw, h);
  // The session is open at `session_started`, not at the upgrade: a refused key is an error message and a close
  // right after the upgrade, and then it is that message which explains the failed open.
  let started = false;
  let refusal: ProviderError | null = null;
  const watch = watchWebSocket(raw, { open: () => {}, message: (m) => h.message(m), closed: (err) => h.closed(!started && refusal !== null ? refusal : err) }, failure);
  const E = sdk.RealtimeEvents;
  const onStarted = (): void => {
    if (started) return;
    started = true;
    h.open();
  };
  const onPartial = (m: { text?: unknown }): void => h.message(transcript(m, false));
  const onCommitted = (m: { text?: unknown }): void => h.message(transcript(m, true));
  const onError = (e: unknown): void => {
    // A native socket error reaches watchWebSocket; only the server's error messages are read here.
    if (typeof e !== 'object' || e === null || !('message_type' in e)) return;
    const m = readElevenLabsError(e, redact);
    if (started) h.message(m);
    else refusal ??= m.err;
  };
  connection.on(E.SESSION_STARTED, onStarted);
  connection.on(E.PARTIAL_TRANSCRIPT, onPartial);
  connection.on(E.COMMITTED_TRANSCRIPT, onCommitted);
  connection.on(E.ERROR, onError);
  return {
    get isOpen() {
      return isWsOpen(raw);
    },
    get bufferedAmount() {
      return raw.bufferedAmount;
    },
    send: (pcm) => connection.send({ audioBase64: pcm.toString('base64') }),
    // No goodbye message in this protocol: our close frame ends the session and the server answers it. The SDK's
    // close() sends a frame without a status code (1005); a normal closure (1000) is sent on its socket instead.
    goodbye: () => raw.close(1000),
    destroy: () => {
      connection.off(E.SESSION_STARTED, onStarted);
      connection.off(E.PARTIAL_TRANSCRIPT, onPartial);
      connection.off(E.COMMITTED_TRANSCRIPT, onCommitted);
      watch.destroy();
    },
  };
}

/** Wraps the SDK's `message` listener so a frame that is not JSON is reported instead of thrown out of the socket. */
function guardParsing(raw: WebSocket, h: LiveHandlers): void {
  for (const listener of raw.listeners('message') as Array<(data: unknown, isBinary: boolean) => void>) {
    raw.off('message', listener);
    raw.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        h.message({ kind: 'malformed', what: 'an unexpected binary frame' });
        return;
      }
      try {
        JSON.parse(data.toString());
      } catch {
        h.message({ kind: 'malformed', what: 'a text frame that is not JSON' });
        return;
      }
      try {
        listener(data, isBinary);
      } catch {
        h.message({ kind: 'malformed', what: 'a message the SDK could not dispatch' });
      }
    });
  }
}

function transcript(m: { text?: unknown }, final: boolean): LiveMessage {
  if (typeof m.text !== 'string') return { kind: 'malformed', what: `a ${final ? 'committed' : 'partial'} transcript without text` };
  return { kind: 'transcript', text: m.text.trim(), final };
}

/** Error messages that a new session cannot fix (a 4xx), and the status each stands for. */
const REFUSALS: Readonly<Record<string, number>> = {
  auth_error: 401,
  quota_exceeded: 402,
  unaccepted_terms: 403,
  invalid_request: 400,
  input_error: 400,
  chunk_size_exceeded: 413,
  rate_limited: 429,
};

export function readElevenLabsError(m: Record<string, unknown>, redact: (t: string) => string): Extract<LiveMessage, { kind: 'error' }> {
  const type = typeof m.message_type === 'string' ? m.message_type : 'error';
  const detail = typeof m.error === 'string' ? m.error : typeof m.message === 'string' ? m.message : 'no detail';
  const status = REFUSALS[type];
  const hint = type === 'auth_error' ? ' (check ELEVENLABS_API_KEY)' : '';
  return {
    kind: 'error',
    err: providerFailure(PROVIDER, 'stt', 'server', `ElevenLabs reported ${type}${hint}: ${redact(detail)}`, status === undefined ? {} : { status }),
  };
}
