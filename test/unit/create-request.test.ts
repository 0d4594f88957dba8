import { describe, expect, it } from 'vitest';
import { parseCreateRequest } from '../../src/calls/create-request.js';
import { parseSendMessage } from '../../src/calls/send-message.js';
import { parseLlmType } from '../../src/providers/registry.js';

describe('parseCreateRequest', () => {
  it('fills defaults: llm_type, vad_config, nil UUIDs, no STT/TTS', () => {
    const r = parseCreateRequest({ id: '6E1C1F0E9B1A4C3E8F000123456789AB', reference_type: 'call' }, 'local.echo');
    expect(r.id).toBe('6e1c1f0e-9b1a-4c3e-8f00-0123456789ab');
    expect(r.llm_type).toBe('local.echo');
    expect(r.stt_type).toBe('');
    expect(r.tts_type).toBe('');
    expect(r.vad_config).toEqual({ confidence: 0.7, start_secs: 0.2, stop_secs: 0.8, min_volume: 0.6 });
  });

  it('generates an id when none is given', () => {
    expect(parseCreateRequest({ reference_type: 'call' }, 'local.echo').id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each([
    [{ reference_type: 'call', stt_type: 'whisper' }, /stt_type whisper is not supported \(supported: deepgram, sphinx, cartesia, elevenlabs\)/],
    [{ reference_type: 'call', tts_type: 'playht' }, /tts_type playht is not supported \(supported: cartesia, elevenlabs, espeak/],
    [{ reference_type: 'call', llm_type: 'dialogflow.x' }, /llm_type dialogflow.x is not supported: unknown vendor dialogflow/],
    [{ reference_type: 'call', llm_type: 'nope' }, /must be <vendor>.<model>/],
    [{ reference_type: 'call', llm_type: 'local.gpt' }, /local models: echo/],
    [{ reference_type: 'task' }, /reference_type must be one of call, ai_call/],
    [{ reference_type: 'call', llm_messages: [{ content: 'x' }] }, /llm_messages\[0\].role/],
    [{ reference_type: 'call', vad_config: { stop_secs: -1 } }, /vad_config.stop_secs/],
    [{ reference_type: 'call', stt_language: 5 }, /stt_language must be a string/],
    [[1, 2], /JSON object/],
  ])('rejects %j', (body, message) => {
    expect(() => parseCreateRequest(body, 'local.echo')).toThrow(message);
  });

  it("accepts ai-manager's default TTS, its vendors and its message roles", () => {
    const r = parseCreateRequest(
      {
        reference_type: 'ai_call',
        tts_type: 'elevenlabs',
        stt_type: 'deepgram',
        llm_type: 'anthropic.claude-sonnet-4-5',
        llm_messages: [{ role: 'function', name: 'f', content: '{}' }, { role: '', content: 'note' }],
      },
      'local.echo',
    );
    expect(r.tts_type).toBe('elevenlabs');
    expect(r.llm_messages.map((m) => m.role)).toEqual(['function', '']);
    // ai-manager's STT list is `cartesia deepgram elevenlabs`: all three are accepted.
    for (const stt of ['cartesia', 'deepgram', 'elevenlabs']) expect(parseCreateRequest({ reference_type: 'call', stt_type: stt }, 'local.echo').stt_type).toBe(stt);
    for (const vendor of ['cerebras', 'fireworks', 'perplexity', 'together', 'sambanova', 'nvidia', 'qwen', 'deepseek', 'mistral']) {
      expect(parseLlmType(`${vendor}.some-model`).vendor).toBe(vendor);
    }
  });

  it('parses llm types with either separator and dotted models', () => {
    expect(parseLlmType('openai.gpt-4o-mini')).toEqual({ vendor: 'openai', model: 'gpt-4o-mini' });
    expect(parseLlmType('grok:grok-3.5')).toEqual({ vendor: 'grok', model: 'grok-3.5' });
    expect(parseLlmType('ollama.llama3.1:8b')).toEqual({ vendor: 'ollama', model: 'llama3.1:8b' });
  });
});

describe('parseSendMessage', () => {
  it('validates the body', () => {
    const id = '6e1c1f0e-9b1a-4c3e-8f00-0123456789ab';
    expect(parseSendMessage({ pipecatcall_id: id, message_text: 'hi', run_immediately: true })).toEqual({
      pipecatcallId: id,
      messageId: '',
      text: 'hi',
      runImmediately: true,
      audioResponse: false,
    });
    expect(() => parseSendMessage({ pipecatcall_id: id })).toThrow(/message_text/);
    expect(() => parseSendMessage({ message_text: 'x' })).toThrow(/pipecatcall_id is required/);
    expect(() => parseSendMessage({ pipecatcall_id: id, message_text: 'x', audio_response: 'yes' })).toThrow(/boolean/);
  });
});
