// OpenAI TTS (`tts_type` `openai`) through the official `openai` SDK's speech endpoint: one streaming request per
// sentence with `response_format: "pcm"` (s16le mono at 24 kHz, read as it arrives); a barge-in aborts the request
// in flight. The voice is `tts_voice_id` (default `alloy`); model `gpt-4o-mini-tts` unless configured.

import OpenAI from 'openai';

import type { ProviderError } from '../../errors.js';
import { describeCause, hostOf, providerFailure, redactorFor } from '../base/failure.js';
import { sentenceTtsProvider, type SentenceSynthesizer } from '../base/sentence-tts.js';
import type { TtsProvider } from '../types.js';

export interface OpenAiTtsSettings {
  apiKey: string;
  /** '' = https://api.openai.com/v1. */
  baseUrl: string;
  model?: string;
  stallTimeoutMs?: number;
}

const PROVIDER = 'openai';
/** OpenAI's `pcm` format: 24 kHz, 16-bit signed little-endian, mono. */
const SAMPLE_RATE = 24_000;
const DEFAULT_BASE_URL = 'https://api.openai.com/v1';

export function createOpenAiTts(settings: OpenAiTtsSettings): TtsProvider {
  const baseURL = settings.baseUrl === '' ? DEFAULT_BASE_URL : settings.baseUrl;
  const where = `OpenAI TTS at ${hostOf(baseURL) || '(invalid base URL)'}`;
  const redact = redactorFor(settings.apiKey);
  let client: OpenAI | undefined;

  const toError = (err: unknown): ProviderError => {
    if (err instanceof OpenAI.APIConnectionError) {
      return providerFailure(PROVIDER, 'tts', 'network', `${where}: connection failed: ${redact(describeCause(err.cause ?? err))}`);
    }
    if (err instanceof OpenAI.APIError && typeof err.status === 'number') {
      return providerFailure(PROVIDER, 'tts', 'http', `${where} answered HTTP ${err.status}: ${redact(err.message.replace(/^\d{3}\s+/, ''))}`, { status: err.status });
    }
    return providerFailure(PROVIDER, 'tts', 'network', `${where}: stream failed: ${redact(describeCause(err))}`);
  };

  return sentenceTtsProvider(
    PROVIDER,
    (options): SentenceSynthesizer => {
      if (settings.apiKey === '') throw providerFailure(PROVIDER, 'tts', 'refused', 'OpenAI TTS needs an API key: set OPENAI_API_KEY');
      client ??= new OpenAI({ apiKey: settings.apiKey, baseURL, organization: null, project: null, maxRetries: 0, logLevel: 'off' });
      const sdk = client;
      const voice = options.voiceId === '' ? 'alloy' : options.voiceId;
      return {
        name: PROVIDER,
        sampleRate: SAMPLE_RATE,
        toError,
        async *synthesize(text: string, signal: AbortSignal): AsyncGenerator<Uint8Array> {
          const response = await sdk.audio.speech.create(
            { model: settings.model ?? 'gpt-4o-mini-tts', voice, input: text, response_format: 'pcm' },
            { signal },
          );
          if (response.body === null) return;
          for await (const chunk of response.body) yield chunk as Uint8Array;
        },
      };
    },
    settings.stallTimeoutMs,
  );
}
