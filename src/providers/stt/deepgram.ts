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
import { redactorFor } from '../base/failure.js';
import type { SttOptions, SttProvider, SttStream } from '../types.js';
import { environmentFor } from './deepgram-protocol.js';
import { DeepgramStream } from './deepgram-stream.js';

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
