// Builds the provider implementations from type strings (`deepgram`, `sphinx`, `openai.gpt-4o`, `local.echo`,
// `cartesia`, `espeak`). Adding a provider is one file and one line here. Keys come from the configuration or,
// for the LLM of an ai_call, from ai-manager; they are never logged.

import type { Config } from '../config.js';
import { BadRequestError, ProviderError } from '../errors.js';
import { createEchoLlm } from './llm/echo.js';
import { createOpenAiLlm } from './llm/openai.js';
import { LLM_VENDORS, parseLlmType } from './registry.js';
import { createDeepgramStt } from './stt/deepgram.js';
import { createSphinxStt } from './stt/sphinx.js';
import { createCartesiaTts, type CartesiaTtsSettings } from './tts/cartesia.js';
import { createEspeakTts } from './tts/espeak.js';
import type { LlmClient, SttProvider, TtsProvider } from './types.js';

export type ProviderSettings = Pick<Config, 'keys' | 'openaiBaseUrl' | 'deepgramBaseUrl' | 'cartesiaBaseUrl' | 'sphinxJsgf'>;

export class ProviderRegistry {
  private readonly stt = new Map<string, SttProvider>();
  private readonly tts = new Map<string, TtsProvider>();

  constructor(
    private readonly settings: ProviderSettings,
    /** Test hook: how the Cartesia WebSocket reaches a local server (it always dials wss://). */
    private readonly overrides: { cartesiaCreateConnection?: CartesiaTtsSettings['createConnection'] } = {},
  ) {}

  /** Refuses a create whose providers cannot work here (a missing key), before anything is written. */
  checkAvailable(types: { stt: string; tts: string; ttsVoiceId: string }): void {
    if (types.stt === 'deepgram' && this.settings.keys.deepgram === '') {
      throw new BadRequestError('stt_type deepgram needs DEEPGRAM_API_KEY on this instance');
    }
    if (types.tts === 'cartesia' && this.settings.keys.cartesia === '') {
      throw new BadRequestError('tts_type cartesia needs CARTESIA_API_KEY on this instance');
    }
    if (types.tts === 'cartesia' && types.ttsVoiceId === '') {
      throw new BadRequestError('tts_type cartesia needs a tts_voice_id (or DEFAULT_TTS_VOICE_ID on this instance)');
    }
  }

  sttProvider(type: string): SttProvider {
    let p = this.stt.get(type);
    if (p !== undefined) return p;
    switch (type) {
      case 'deepgram':
        p = createDeepgramStt({ apiKey: this.settings.keys.deepgram, baseUrl: this.settings.deepgramBaseUrl });
        break;
      case 'sphinx':
        p = createSphinxStt({ jsgfPath: this.settings.sphinxJsgf });
        break;
      default:
        throw new BadRequestError(`stt_type ${type} is not supported`);
    }
    this.stt.set(type, p);
    return p;
  }

  ttsProvider(type: string): TtsProvider {
    let p = this.tts.get(type);
    if (p !== undefined) return p;
    switch (type) {
      case 'cartesia':
        p = createCartesiaTts({
          apiKey: this.settings.keys.cartesia,
          baseUrl: this.settings.cartesiaBaseUrl,
          ...(this.overrides.cartesiaCreateConnection !== undefined ? { createConnection: this.overrides.cartesiaCreateConnection } : {}),
        });
        break;
      case 'espeak':
        p = createEspeakTts();
        break;
      default:
        throw new BadRequestError(`tts_type ${type} is not supported`);
    }
    this.tts.set(type, p);
    return p;
  }

  /** The LLM of one call. `engineKey` is the AI's key from ai-manager ('' → the environment's key). */
  llmClient(llmType: string, engineKey: string): LlmClient {
    const { vendor, model } = parseLlmType(llmType);
    if (vendor === 'local') return createEchoLlm();
    const table = LLM_VENDORS[vendor];
    if (table === undefined) throw new BadRequestError(`llm_type ${llmType} is not supported`);
    const envKey = table.keyName === 'xai' ? this.settings.keys.xai : table.keyName === 'openai' ? this.settings.keys.openai : '';
    const apiKey = engineKey !== '' ? engineKey : envKey;
    if (apiKey === '' && table.keyName !== 'none') {
      throw new ProviderError(vendor, 'llm', `no API key for ${vendor}: set ${table.keyName === 'xai' ? 'XAI_API_KEY' : 'OPENAI_API_KEY'} or give the AI an engine_key`);
    }
    // OPENAI_BASE_URL points the openai vendor elsewhere (a proxy, a local server); other vendors use the table.
    const baseUrl = vendor === 'openai' && this.settings.openaiBaseUrl !== '' ? this.settings.openaiBaseUrl : table.baseUrl;
    return createOpenAiLlm({ vendor, model, apiKey: apiKey === '' ? 'none' : apiKey, baseUrl });
  }
}
