// Deepgram Aura TTS (`tts_type` `deepgram`) through the official `@deepgram/sdk` REST speak endpoint: one
// streaming request per sentence, `linear16` at 16 kHz with no container (raw PCM, read as it arrives); a
// barge-in aborts the request in flight. `tts_voice_id` is the Aura model name (`aura-2-thalia-en` by default).

import { DeepgramClient } from '@deepgram/sdk';

import type { ProviderError } from '../../errors.js';
import { describeCause, hostOf, providerFailure, redactorFor } from '../base/failure.js';
import { sentenceTtsProvider, type SentenceSynthesizer } from '../base/sentence-tts.js';
import type { TtsProvider } from '../types.js';

export interface DeepgramTtsSettings {
  apiKey: string;
  /** '' = the SDK's default (api.deepgram.com); else an http(s):// base. */
  baseUrl: string;
  stallTimeoutMs?: number;
}

const PROVIDER = 'deepgram';
const SAMPLE_RATE = 16_000;
const DEFAULT_MODEL = 'aura-2-thalia-en';
const MODEL = /^aura-[a-z0-9-]{1,60}$/;

export function createDeepgramTts(settings: DeepgramTtsSettings): TtsProvider {
  const base = settings.baseUrl === '' ? 'https://api.deepgram.com' : settings.baseUrl;
  const where = `Deepgram TTS at ${hostOf(base) || '(invalid base URL)'}`;
  const redact = redactorFor(settings.apiKey);
  let client: DeepgramClient | undefined;

  const toError = (err: unknown): ProviderError => {
    const status = (err as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number') {
      const why = status === 401 || status === 403 ? 'the API key was refused (check DEEPGRAM_API_KEY)' : redact(describeCause(err));
      return providerFailure(PROVIDER, 'tts', 'http', `${where} answered HTTP ${status}: ${why}`, { status });
    }
    return providerFailure(PROVIDER, 'tts', 'network', `${where}: request failed: ${redact(describeCause(err))}`);
  };

  return sentenceTtsProvider(
    PROVIDER,
    (options): SentenceSynthesizer => {
      if (settings.apiKey === '') throw providerFailure(PROVIDER, 'tts', 'refused', 'Deepgram TTS needs an API key: set DEEPGRAM_API_KEY');
      const model = options.voiceId === '' ? DEFAULT_MODEL : options.voiceId;
      if (!MODEL.test(model)) throw providerFailure(PROVIDER, 'tts', 'refused', `Deepgram TTS voice ${JSON.stringify(model.slice(0, 80))} is not an Aura model name (aura-…)`);
      client ??= new DeepgramClient({ apiKey: settings.apiKey, ...(settings.baseUrl === '' ? {} : { baseUrl: settings.baseUrl }) });
      const speak = client.speak.v1.audio;
      return {
        name: PROVIDER,
        sampleRate: SAMPLE_RATE,
        toError,
        async *synthesize(text: string, signal: AbortSignal): AsyncGenerator<Uint8Array> {
          const audio = await speak.generate(
            { text, model, encoding: 'linear16', sample_rate: SAMPLE_RATE, container: 'none' },
            { abortSignal: signal, maxRetries: 0 },
          );
          const body = audio.stream();
          if (body === null) return;
          for await (const chunk of body) yield chunk;
        },
      };
    },
    settings.stallTimeoutMs,
  );
}
