// Provider failures on real calls through the official SDKs against the local fakes: two failed LLM runs, an STT
// that refuses the connection, two failed TTS turns — each ends the call with its <stage>_error, and each failure
// is counted once in provider_errors_total, by the provider's base, under the provider and stage.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { TestCaller, loadPrompt } from '../helpers/caller.js';
import { HOST_QUEUE as HOST, cloudCall, startCloudApp, type CloudApp } from '../helpers/cloud-app.js';
import { waitUntil } from '../helpers/wait.js';

let c: CloudApp;

beforeAll(async () => {
  c = await startCloudApp();
});

afterAll(async () => {
  await c?.close();
});

describe('provider failures', () => {
  it('two failed LLM runs end the call with llm_error', async () => {
    const aicallId = randomUUID();
    c.aicalls.set(aicallId, { referenceType: 'conversation', answerTools: true });
    c.openai.enqueue(...Array.from({ length: 4 }, () => ({ error: { status: 500 } }))); // 2 runs × (request + its 1 retry)
    const before = c.openai.requests.length;
    const id = randomUUID();
    await c.create({ id, reference_type: 'ai_call', reference_id: aicallId, llm_type: 'openai.gpt-4o-mini' });
    await waitUntil('the pipeline', () => c.t.app.calls.session(id)?.pipelineRunning === true);
    await waitUntil('the first failure', () => c.openai.requests.length === before + 2 && c.openai.requests.at(-1)?.outcome !== undefined);
    await c.rpc.request(HOST, { uri: '/v1/messages', method: 'POST', data: { pipecatcall_id: id, message_text: 'hello?', run_immediately: true } });
    await waitUntil('llm_error termination', () => c.callEvents(id).includes('pipecatcall_terminated'));
    const text = await c.t.metrics.registry.getSingleMetricAsString('pipecat_manager_calls_terminated_total');
    expect(text).toMatch(/reason="llm_error"} 1/);
    const errors = await c.t.metrics.registry.getSingleMetricAsString('pipecat_manager_provider_errors_total');
    // Each failed attempt once, the retried ones included (the base counts; provider_retries_total says which).
    expect(errors).toMatch(/provider="openai.gpt-4o-mini",stage="llm"} 4/);
  }, 20_000);

  it('an STT that refuses the connection ends the call with stt_error and hands it back to the dialplan', async () => {
    c.deepgram.refuseUpgrades(500, 1);
    const errorsBefore = await c.providerErrors('deepgram', 'stt');
    const id = randomUUID();
    c.openai.enqueue({ text: ['Hello.'] });
    await c.create(cloudCall(id));
    const caller = await TestCaller.dial(c.t.app.addresses.audiosocket.port, id, 8000);
    try {
      await waitUntil('stt_error termination', () => c.callEvents(id).includes('pipecatcall_terminated'));
      await caller.client.closed;
      expect(caller.hangupReceived).toBe(true);
      const text = await c.t.metrics.registry.getSingleMetricAsString('pipecat_manager_calls_terminated_total');
      expect(text).toMatch(/reason="stt_error"} 1/);
      // Counted once, by the STT base, under the provider and stage (not again by the call).
      expect((await c.providerErrors('deepgram', 'stt')) - errorsBefore).toBe(1);
    } finally {
      await caller.hangup();
    }
  }, 20_000);

  it('two failed TTS turns end the call with tts_error; the call does not hang', async () => {
    const id = randomUUID();
    c.openai.enqueue({ text: ['First try.'] }, { text: ['Second try.'] });
    c.cartesia.faults.push({ kind: 'error', message: 'voice not found' }, { kind: 'error', message: 'voice not found' });
    const errorsBefore = await c.providerErrors('cartesia', 'tts');
    await c.create(cloudCall(id));
    const caller = await TestCaller.dial(c.t.app.addresses.audiosocket.port, id, 8000);
    try {
      await waitUntil('the pipeline', () => c.t.app.calls.session(id)?.pipelineRunning === true);
      await waitUntil('the first TTS failure', () => c.cartesia.faults.length === 1);
      await caller.say(await loadPrompt('hello-world'));
      c.deepgram.sendResults('hello world', { isFinal: true, speechFinal: true }, c.deepgram.last);
      await waitUntil('tts_error termination', () => c.callEvents(id).includes('pipecatcall_terminated'));
      const text = await c.t.metrics.registry.getSingleMetricAsString('pipecat_manager_calls_terminated_total');
      expect(text).toMatch(/reason="tts_error"} 1/);
      // Two failed turns mid-call, each counted once by the TTS base.
      expect((await c.providerErrors('cartesia', 'tts')) - errorsBefore).toBe(2);
    } finally {
      await caller.hangup();
    }
  }, 20_000);
});
