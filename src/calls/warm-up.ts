// Warm start (issue 9): loads once, before the daemon reports started, everything a call needs that can be
// shared — the VAD model and an inference session, the resampler modules of the usual rate pairs, the SDK modules
// loaded lazily — and runs the per-frame hot path on synthetic audio so the JIT has compiled it. Measured before
// this existed: the first call greeted in 451 ms against 40 ms for later calls, and stalled every call's output.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { PacedOutput, RateFollowingPacedOutput } from '../audio/paced-output.js';
import { Resampler } from '../audio/resampler.js';
import type { Config } from '../config.js';
import { ProviderRegistry } from '../providers/registry.js';
import { SileroVad } from '../providers/vad/silero.js';

/**
 * Rate pairs calls use: 8 kHz wire ↔ 16 kHz pipeline, 16 kHz TTS → 8 kHz wire, and espeak's 22.05 kHz when it is
 * the default TTS. Each new pair costs a resampler module (≈ 150 ms here), so only these.
 */
function ratePairs(config: Config): Array<readonly [number, number]> {
  const pairs: Array<readonly [number, number]> = [
    [8000, 16000],
    [16000, 8000],
  ];
  if (config.defaults.ttsType === 'espeak') pairs.push([22050, 8000], [22050, 16000]);
  return pairs;
}
/** One second of audio through the hot path: enough calls for V8 to optimise each function on it. */
const DRY_RUN_FRAMES = 50;

export interface WarmUpReport {
  totalMs: number;
  /** Milliseconds per step, for the startup log. */
  steps: Record<string, number>;
  /** Steps that failed (the daemon still starts; the first call pays what the step would have). */
  failed: Record<string, string>;
}

export async function warmUp(config: Config): Promise<WarmUpReport> {
  const steps: Record<string, number> = {};
  const failed: Record<string, string> = {};
  const t0 = performance.now();
  const step = async (name: string, run: () => Promise<void> | void): Promise<void> => {
    const t = performance.now();
    try {
      await run();
    } catch (err) {
      failed[name] = err instanceof Error ? err.message : String(err);
    }
    steps[name] = Math.round((performance.now() - t) * 10) / 10;
  };

  // The model itself is required: without it no call could detect speech, so its failure fails the start.
  await SileroVad.preload();
  await step('vad', async () => {
    // A session's first inference allocates and compiles its kernels: done here, not in a call's first turn.
    const vad = await SileroVad.create({});
    try {
      vad.write(noise(16000, 16000));
    } finally {
      await vad.close();
    }
  });
  await step('resampler', async () => {
    for (const [from, to] of ratePairs(config)) {
      const r = await Resampler.create(from, to, config.resamplerQuality);
      for (let i = 0; i < DRY_RUN_FRAMES; i++) r.process(noise(from, from / 50));
      r.flush();
      r.close();
    }
  });
  await step('sdk', async () => {
    // Loaded lazily by its provider (its ESM build fails on Node 20): required here so the first call does not.
    if (config.keys.cartesia !== '' || config.defaults.ttsType === 'cartesia') {
      const requireCjs = createRequire(import.meta.url);
      requireCjs('@cartesia/cartesia-js');
      requireCjs('@cartesia/cartesia-js/resources/tts/ws');
    }
    // Node loads its fetch implementation on the first call (≈ 50 ms here); the OpenAI SDK uses it.
    await (await fetch('data:,warm-up')).text();
    await dryLlmStream(config);
  });
  await step('paced_output', async () => {
    let written = 0;
    const writer = { headerBytes: 3, write: (): void => void written++, silence: (): Buffer => Buffer.alloc(323) };
    const out = new RateFollowingPacedOutput({ rate: 8000, writer, maxFrames: 100 });
    const plain = new PacedOutput({ rate: 16000, writer: { ...writer, silence: () => null }, maxFrames: 100 });
    for (let i = 0; i < DRY_RUN_FRAMES; i++) {
      out.push(Buffer.from(noise(8000, 160).buffer));
      plain.push(Buffer.from(noise(16000, 320).buffer));
      out.tick();
      plain.tick();
    }
    out.push(Buffer.from(noise(8000, 1000).buffer));
    out.changeRate(await Resampler.create(8000, 16000, config.resamplerQuality));
    while (out.queuedFrames > 0) out.tick();
    out.close();
    plain.close();
  });
  return { totalMs: performance.now() - t0, steps, failed };
}

/** Quiet deterministic noise: exercises the same code paths as speech without waking the VAD. */
function noise(rate: number, samples: number): Int16Array {
  const out = new Int16Array(samples);
  let seed = rate;
  for (let i = 0; i < samples; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    out[i] = (seed % 200) - 100;
  }
  return out;
}

/**
 * One streamed chat completion through the real OpenAI SDK client, from a loopback server in this process that
 * answers like the API: the SDK's request, SSE parsing and chunk handling are compiled before the first greeting.
 */
async function dryLlmStream(config: Config): Promise<void> {
  const chunk = (delta: Record<string, unknown>, finish: string | null): string =>
    `data: ${JSON.stringify({ id: 'warm-up', object: 'chat.completion.chunk', created: 0, model: 'warm-up', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`${chunk({ role: 'assistant', content: 'Hello.' }, null)}${chunk({}, 'stop')}data: [DONE]\n\n`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const providers = new ProviderRegistry({ ...config, openaiBaseUrl: `http://127.0.0.1:${port}/v1` });
    const llm = providers.llmClient('openai.warm-up', 'warm-up-key');
    const signal = AbortSignal.timeout(5000);
    for await (const piece of llm.stream({ messages: [{ role: 'user', content: 'hi' }], tools: [], signal })) void piece;
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
