// What Deepgram's live-transcription socket sends and how its failures read, apart from the stream's state
// machine (deepgram.ts): message classification, the WebSocket environment derived from a base URL, the mapping
// of a failed dial to a ProviderError, and the hard close of the SDK socket's underlying \`ws\`.

import type { DeepgramClient } from '@deepgram/sdk';

import { ProviderError } from '../../errors.js';
import { providerFailure } from '../base/failure.js';

type ListenSocket = Awaited<ReturnType<DeepgramClient['listen']['v1']['connect']>>;
const CLOSED = 3;

export type DeepgramMessage =
  | { kind: 'transcript'; text: string; final: boolean }
  | { kind: 'ignore' }
  | { kind: 'error'; description: string }
  | { kind: 'malformed'; what: string };

/** One message from the socket (the SDK hands over parsed JSON, or the raw string when it was not JSON). */
export function readDeepgramMessage(message: unknown): DeepgramMessage {
  if (typeof message === 'string') return { kind: 'malformed', what: `a text frame that is not JSON (${message.length} chars)` };
  if (typeof message !== 'object' || message === null || message instanceof Blob) return { kind: 'malformed', what: 'an unexpected binary frame' };
  const m = message as Record<string, unknown>;
  switch (m.type) {
    case 'Results': {
      const parsed = parseResults(m);
      if (parsed === null) return { kind: 'malformed', what: 'a Results message without channel.alternatives[0].transcript' };
      const text = parsed.text.trim();
      return text === '' ? { kind: 'ignore' } : { kind: 'transcript', text, final: parsed.final };
    }
    case 'Metadata':
    case 'UtteranceEnd':
    case 'SpeechStarted':
      return { kind: 'ignore' };
    case 'Error':
      return { kind: 'error', description: typeof m.description === 'string' ? m.description : typeof m.message === 'string' ? m.message : 'unknown' };
    default:
      return { kind: 'malformed', what: `a message of unknown type ${JSON.stringify(String(m.type)).slice(0, 40)}` };
  }
}

/** A dial that failed, as a ProviderError (the HTTP status of a refused upgrade decides \`retryable\`). */
export function deepgramOpenError(err: unknown, what: string, host: string, connectTimeoutMs: number, redact: (t: string) => string): ProviderError {
  if (err instanceof ProviderError) return err;
  const raw = err instanceof Error ? err.message : String(err);
  const status = /Unexpected server response: (\d{3})/.exec(raw)?.[1];
  const say = (why: string): string => `${what} at ${host}: ${redact(why)}`;
  if (status !== undefined) {
    const code = Number(status);
    const why = code === 401 || code === 403 ? `HTTP ${code}: the API key was refused (check DEEPGRAM_API_KEY)` : `HTTP ${code} at the WebSocket upgrade`;
    return providerFailure('deepgram', 'stt', 'http', say(why), { cause: err, status: code });
  }
  if (raw === 'TIMEOUT') return providerFailure('deepgram', 'stt', 'stall', say(`no WebSocket upgrade within ${connectTimeoutMs} ms`), { cause: err });
  return providerFailure('deepgram', 'stt', 'network', say(raw.includes('ECONNREFUSED') ? 'connection refused' : raw), { cause: err });
}

/** `http://h:p` → REST `http://h:p`, WebSocket `ws://h:p` (https → wss). */
export function environmentFor(baseUrl: string): { base: string; production: string; agent: string; agentRest: string } | undefined {
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
export function terminateRaw(socket: ListenSocket): void {
  const raw = (socket.socket as unknown as { _ws?: { readyState: number; terminate?: () => void } })._ws;
  if (raw !== undefined && raw.readyState !== CLOSED) raw.terminate?.();
}
