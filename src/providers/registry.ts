// Which provider type strings a call may ask for (SPEC §3.3–3.5, §5.1). Create requests are validated here
// before any side effect, so an unsupported provider is a 400 and never a silent fallback.

import { BadRequestError } from '../errors.js';

export const STT_TYPES = ['deepgram', 'sphinx'] as const;
export const TTS_TYPES = ['cartesia', 'espeak'] as const;

/** OpenAI-compatible vendors: base URL and the environment key used when ai-manager gives none. */
export const LLM_VENDORS: Readonly<Record<string, { baseUrl: string; keyName: 'openai' | 'xai' | 'none' }>> = {
  openai: { baseUrl: 'https://api.openai.com/v1', keyName: 'openai' },
  grok: { baseUrl: 'https://api.x.ai/v1', keyName: 'xai' },
  xai: { baseUrl: 'https://api.x.ai/v1', keyName: 'xai' },
  groq: { baseUrl: 'https://api.groq.com/openai/v1', keyName: 'openai' },
  openrouter: { baseUrl: 'https://openrouter.ai/api/v1', keyName: 'openai' },
  ollama: { baseUrl: 'http://127.0.0.1:11434/v1', keyName: 'none' },
  deepseek: { baseUrl: 'https://api.deepseek.com/v1', keyName: 'openai' },
  mistral: { baseUrl: 'https://api.mistral.ai/v1', keyName: 'openai' },
};

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
    throw new BadRequestError(
      `llm_type ${text} is not supported: unknown vendor ${vendor} (known: local, ${Object.keys(LLM_VENDORS).join(', ')})`,
    );
  }
  return { vendor, model };
}

export function validateSttType(text: string): void {
  if (text !== '' && !(STT_TYPES as readonly string[]).includes(text)) {
    throw new BadRequestError(`stt_type ${text} is not supported (supported: ${STT_TYPES.join(', ')})`);
  }
}

export function validateTtsType(text: string): void {
  if (text !== '' && !(TTS_TYPES as readonly string[]).includes(text)) {
    throw new BadRequestError(`tts_type ${text} is not supported (supported: ${TTS_TYPES.join(', ')})`);
  }
}
