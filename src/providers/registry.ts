// The one provider registry: which type strings a call may ask for (SPEC §3.3–3.5, §5.1) and how each is built.
// Create requests are validated here before any side effect, so an unsupported or unconfigured provider is a 400
// naming the type and what is supported — never a silent fallback. Adding a provider is one file and one line
// in a table below. Keys come from the configuration or, for the LLM of an ai_call, from ai-manager; they are
// never logged. Every provider handed out counts its failures through the metrics port given here (the bases do
// the counting: base/metrics.ts).

import type { Config } from '../config.js';
import { BadRequestError, ProviderError } from '../errors.js';
import type { LlmPolicy } from './base/llm.js';
import { NO_PROVIDER_METRICS, type ProviderMetrics } from './base/metrics.js';
import { meteredStt } from './base/stt.js';
import { meteredTts } from './base/tts.js';
import { createAnthropicLlm } from './llm/anthropic.js';
import { createEchoLlm } from './llm/echo.js';
import { createGeminiLlm } from './llm/gemini.js';
import { createOpenAiLlm } from './llm/openai.js';
import { createCartesiaStt } from './stt/cartesia.js';
import { createDeepgramStt } from './stt/deepgram.js';
import { createElevenLabsStt } from './stt/elevenlabs.js';
import { createSphinxStt } from './stt/sphinx.js';
import { createCartesiaTts, type CartesiaTtsSettings } from './tts/cartesia.js';
import { createDeepgramTts } from './tts/deepgram-tts.js';
import { createElevenLabsTts } from './tts/elevenlabs.js';
import { createEspeakTts } from './tts/espeak.js';
import { createOpenAiTts } from './tts/openai-tts.js';
import type { LlmClient, SttProvider, TtsProvider } from './types.js';

export type ProviderSettings = Pick<
  Config,
  'keys' | 'openaiBaseUrl' | 'deepgramBaseUrl' | 'cartesiaBaseUrl' | 'elevenlabsBaseUrl' | 'anthropicBaseUrl' | 'geminiBaseUrl' | 'sphinxJsgf'
>;
type Keys = Config['keys'];

/** Test hooks: how providers reach local fakes. */
export interface ProviderOverrides {
  /** How the Cartesia WebSocket reaches a local server (it always dials wss://). */
  cartesiaCreateConnection?: CartesiaTtsSettings['createConnection'];
  /** A base URL per LLM vendor instead of its real endpoint. */
  llmBaseUrl?: (vendor: string) => string | undefined;
  /** Watchdog/retry policy of every LLM client. */
  llmPolicy?: LlmPolicy;
}

interface Entry<T> {
  create(s: ProviderSettings, o: ProviderOverrides): T;
  /** What this instance lacks to run it ('' = ready): checked at create time. */
  missing?(s: ProviderSettings, voiceId: string): string;
}

const needsKey = (key: (k: Keys) => string, env: string) => (s: ProviderSettings) => (key(s.keys) === '' ? `needs ${env} on this instance` : '');

const STT: Record<string, Entry<SttProvider>> = {
  deepgram: { create: (s) => createDeepgramStt({ apiKey: s.keys.deepgram, baseUrl: s.deepgramBaseUrl }), missing: needsKey((k) => k.deepgram, 'DEEPGRAM_API_KEY') },
  sphinx: { create: (s) => createSphinxStt({ jsgfPath: s.sphinxJsgf }) },
  cartesia: { create: (s) => createCartesiaStt({ apiKey: s.keys.cartesia, baseUrl: s.cartesiaBaseUrl }), missing: needsKey((k) => k.cartesia, 'CARTESIA_API_KEY') },
  elevenlabs: { create: (s) => createElevenLabsStt({ apiKey: s.keys.elevenlabs, baseUrl: s.elevenlabsBaseUrl }), missing: needsKey((k) => k.elevenlabs, 'ELEVENLABS_API_KEY') },
};

const TTS: Record<string, Entry<TtsProvider>> = {
  cartesia: {
    create: (s, o) =>
      createCartesiaTts({ apiKey: s.keys.cartesia, baseUrl: s.cartesiaBaseUrl, ...(o.cartesiaCreateConnection !== undefined ? { createConnection: o.cartesiaCreateConnection } : {}) }),
    missing: (s, voice) => needsKey((k) => k.cartesia, 'CARTESIA_API_KEY')(s) || (voice === '' ? 'needs a tts_voice_id (or DEFAULT_TTS_VOICE_ID on this instance)' : ''),
  },
  elevenlabs: { create: (s) => createElevenLabsTts({ apiKey: s.keys.elevenlabs, baseUrl: s.elevenlabsBaseUrl }), missing: needsKey((k) => k.elevenlabs, 'ELEVENLABS_API_KEY') },
  espeak: { create: () => createEspeakTts() },
  openai: { create: (s) => createOpenAiTts({ apiKey: s.keys.openai, baseUrl: s.openaiBaseUrl }), missing: needsKey((k) => k.openai, 'OPENAI_API_KEY') },
  deepgram: { create: (s) => createDeepgramTts({ apiKey: s.keys.deepgram, baseUrl: s.deepgramBaseUrl }), missing: needsKey((k) => k.deepgram, 'DEEPGRAM_API_KEY') },
};

interface LlmVendor {
  /** The adapter that speaks the vendor's API. */
  api: 'openai' | 'anthropic' | 'gemini';
  /** '' = the SDK's default endpoint. */
  baseUrl: string;
  /** The variable named when no key is found ('' = the server needs none). */
  keyEnv: string;
  key(k: Keys): string;
}

const compatible = (baseUrl: string, keyEnv: string, key: (k: Keys) => string): LlmVendor => ({ api: 'openai', baseUrl, keyEnv, key });

/** `<vendor>` of `llm_type` → its API. OpenAI-compatible vendors use their documented base URLs. */
export const LLM_VENDORS: Readonly<Record<string, LlmVendor>> = {
  openai: compatible('https://api.openai.com/v1', 'OPENAI_API_KEY', (k) => k.openai),
  grok: compatible('https://api.x.ai/v1', 'XAI_API_KEY', (k) => k.xai),
  xai: compatible('https://api.x.ai/v1', 'XAI_API_KEY', (k) => k.xai),
  // These four took OPENAI_API_KEY before they had their own variables: it still works as the fallback.
  groq: compatible('https://api.groq.com/openai/v1', 'GROQ_API_KEY', (k) => k.groq || k.openai),
  openrouter: compatible('https://openrouter.ai/api/v1', 'OPENROUTER_API_KEY', (k) => k.openrouter || k.openai),
  deepseek: compatible('https://api.deepseek.com/v1', 'DEEPSEEK_API_KEY', (k) => k.deepseek || k.openai),
  mistral: compatible('https://api.mistral.ai/v1', 'MISTRAL_API_KEY', (k) => k.mistral || k.openai),
  ollama: compatible('http://127.0.0.1:11434/v1', '', () => ''),
  cerebras: compatible('https://api.cerebras.ai/v1', 'CEREBRAS_API_KEY', (k) => k.cerebras),
  fireworks: compatible('https://api.fireworks.ai/inference/v1', 'FIREWORKS_API_KEY', (k) => k.fireworks),
  perplexity: compatible('https://api.perplexity.ai', 'PERPLEXITY_API_KEY', (k) => k.perplexity),
  together: compatible('https://api.together.xyz/v1', 'TOGETHER_API_KEY', (k) => k.together),
  sambanova: compatible('https://api.sambanova.ai/v1', 'SAMBANOVA_API_KEY', (k) => k.sambanova),
  nvidia: compatible('https://integrate.api.nvidia.com/v1', 'NVIDIA_API_KEY', (k) => k.nvidia),
  qwen: compatible('https://dashscope-intl.aliyuncs.com/compatible-mode/v1', 'QWEN_API_KEY', (k) => k.qwen),
  anthropic: { api: 'anthropic', baseUrl: '', keyEnv: 'ANTHROPIC_API_KEY', key: (k) => k.anthropic },
  gemini: { api: 'gemini', baseUrl: '', keyEnv: 'GEMINI_API_KEY', key: (k) => k.gemini },
};

/**
 * Every call's LLM retries once, after this pause, a failure that failure.ts calls retryable (HTTP 408/429/5xx, a
 * refused or reset connection) when nothing reached the caller yet; never a stall, never after the first token.
 */
export const LLM_RETRY_BACKOFF_MS = 250;

export const STT_TYPES: readonly string[] = Object.keys(STT);
export const TTS_TYPES: readonly string[] = Object.keys(TTS);
/** Offline LLMs that need no network and no key. */
export const LOCAL_LLM_MODELS = ['echo'] as const;

export interface LlmType {
  vendor: string;
  model: string;
}

/** Splits `<vendor>.<model>` or `<vendor>:<model>` at the first separator; the model may contain dots. */
export function parseLlmType(text: string): LlmType {
  const m = /^([a-z0-9_-]+)[.:](.+)$/i.exec(text.trim());
  if (m === null) throw new BadRequestError(`llm_type ${JSON.stringify(text)} must be <vendor>.<model>, e.g. openai.gpt-4o-mini`);
  const vendor = (m[1] ?? '').toLowerCase();
  const model = m[2] ?? '';
  if (vendor === 'local') {
    if (!(LOCAL_LLM_MODELS as readonly string[]).includes(model)) {
      throw new BadRequestError(`llm_type ${text} is not supported (local models: ${LOCAL_LLM_MODELS.join(', ')})`);
    }
  } else if (LLM_VENDORS[vendor] === undefined) {
    throw new BadRequestError(`llm_type ${text} is not supported: unknown vendor ${vendor} (known: local, ${Object.keys(LLM_VENDORS).join(', ')})`);
  }
  return { vendor, model };
}

export function validateSttType(text: string): void {
  if (text !== '' && STT[text] === undefined) throw new BadRequestError(`stt_type ${text} is not supported (supported: ${STT_TYPES.join(', ')})`);
}

export function validateTtsType(text: string): void {
  if (text !== '' && TTS[text] === undefined) throw new BadRequestError(`tts_type ${text} is not supported (supported: ${TTS_TYPES.join(', ')})`);
}

export class ProviderRegistry {
  private readonly stt = new Map<string, SttProvider>();
  private readonly tts = new Map<string, TtsProvider>();

  constructor(
    private readonly settings: ProviderSettings,
    private readonly overrides: ProviderOverrides = {},
    /** Where the provider bases count (Metrics.providers in the daemon). */
    protected readonly metrics: ProviderMetrics = NO_PROVIDER_METRICS,
  ) {}

  /** Refuses a create whose providers cannot work here (a missing key), before anything is written. */
  checkAvailable(types: { stt: string; tts: string; ttsVoiceId: string }): void {
    const stt = types.stt === '' ? '' : (STT[types.stt]?.missing?.(this.settings, '') ?? '');
    if (stt !== '') throw new BadRequestError(`stt_type ${types.stt} ${stt}`);
    const tts = types.tts === '' ? '' : (TTS[types.tts]?.missing?.(this.settings, types.ttsVoiceId) ?? '');
    if (tts !== '') throw new BadRequestError(`tts_type ${types.tts} ${tts}`);
  }

  sttProvider(type: string): SttProvider {
    return this.build(this.stt, STT, type, 'stt_type', (p) => meteredStt(p, this.metrics));
  }

  ttsProvider(type: string): TtsProvider {
    return this.build(this.tts, TTS, type, 'tts_type', (p) => meteredTts(p, this.metrics));
  }

  /** The LLM of one call. `engineKey` is the AI's key from ai-manager ('' → the environment's key). */
  llmClient(llmType: string, engineKey: string): LlmClient {
    const { vendor, model } = parseLlmType(llmType);
    if (vendor === 'local') return createEchoLlm();
    const table = LLM_VENDORS[vendor];
    if (table === undefined) throw new BadRequestError(`llm_type ${llmType} is not supported`);
    const apiKey = engineKey !== '' ? engineKey : table.key(this.settings.keys);
    if (apiKey === '' && table.keyEnv !== '') {
      // No client exists to count this one, so the registry does.
      this.metrics.failed(vendor, 'llm');
      throw new ProviderError(vendor, 'llm', `no API key for ${vendor}: set ${table.keyEnv} or give the AI an engine_key`);
    }
    const baseUrl = this.overrides.llmBaseUrl?.(vendor) ?? this.configuredBaseUrl(vendor) ?? table.baseUrl;
    const policy: LlmPolicy = { retryBackoffMs: LLM_RETRY_BACKOFF_MS, ...this.overrides.llmPolicy, metrics: this.metrics };
    if (table.api === 'anthropic') return createAnthropicLlm({ model, apiKey, baseUrl, ...policy });
    if (table.api === 'gemini') return createGeminiLlm({ model, apiKey, baseUrl, ...policy });
    return createOpenAiLlm({ vendor, model, apiKey: apiKey === '' ? 'none' : apiKey, baseUrl, ...policy });
  }

  /** OPENAI_BASE_URL points the openai vendor elsewhere (a proxy, a local server); likewise ANTHROPIC_/GEMINI_BASE_URL. */
  private configuredBaseUrl(vendor: string): string | undefined {
    const url = { openai: this.settings.openaiBaseUrl, anthropic: this.settings.anthropicBaseUrl, gemini: this.settings.geminiBaseUrl }[vendor] ?? '';
    return url === '' ? undefined : url;
  }

  private build<T>(cache: Map<string, T>, table: Record<string, Entry<T>>, type: string, what: string, meter: (p: T) => T): T {
    let p = cache.get(type);
    if (p !== undefined) return p;
    const entry = table[type];
    if (entry === undefined) throw new BadRequestError(`${what} ${type} is not supported (supported: ${Object.keys(table).join(', ')})`);
    p = meter(entry.create(this.settings, this.overrides));
    cache.set(type, p);
    return p;
  }
}
