// SileroVad batching: the windows of many calls run through the model together, and every call still gets the
// decisions it would get alone (the LSTM computes each batch row independently; each call keeps its own state).

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Resampler } from '../../src/audio/resampler.js';
import { readWav } from '../../src/audio/wav.js';
import { DspWorkerCrashedError, SileroVad } from '../../src/providers/vad/silero.js';

async function prompt(name: string): Promise<Int16Array> {
  const wav = readWav(readFileSync(`/usr/share/asterisk/sounds/en/${name}.wav`));
  const r = await Resampler.create(8000, 16000, 'sinc_fastest');
  const out = r.process(wav.samples);
  r.close();
  return out;
}

/** Silence, the prompt, silence: one short turn. */
function turn(speech: Int16Array, leadSeconds: number): Int16Array {
  const out = new Int16Array(Math.round(leadSeconds * 16000) + speech.length + 16000 * 2);
  out.set(speech, Math.round(leadSeconds * 16000));
  return out;
}

type Events = Array<{ kind: 'start' | 'stop'; at: number }>;

async function makeVad(events: Events): Promise<SileroVad> {
  return SileroVad.create({
    onSpeechStart: (at) => events.push({ kind: 'start', at }),
    onSpeechStop: (at) => events.push({ kind: 'stop', at }),
  });
}

describe('SileroVad batching', () => {
  it('12 calls analysed together decide exactly as each one alone, in batches', async () => {
    const names = ['hello-world', 'auth-thankyou', 'vm-password', 'vm-goodbye'];
    const streams = await Promise.all(Array.from({ length: 12 }, async (_, k) => turn(await prompt(names[k % 4] as string), 0.3 + 0.07 * k)));

    const alone: Events[] = [];
    for (const pcm of streams) {
      const events: Events = [];
      const vad = await makeVad(events);
      for (let i = 0; i + 320 <= pcm.length; i += 320) {
        vad.write(pcm.subarray(i, i + 320));
        await vad.drained();
      }
      await vad.close();
      alone.push(events);
    }

    const before = await SileroVad.batchStats();
    const together: Events[] = streams.map(() => []);
    const vads = await Promise.all(together.map((events) => makeVad(events)));
    const longest = Math.max(...streams.map((s) => s.length));
    for (let i = 0; i + 320 <= longest; i += 320) {
      streams.forEach((pcm, k) => {
        if (i + 320 <= pcm.length) vads[k]?.write(pcm.subarray(i, i + 320));
      });
      await Promise.all(vads.map((v) => v.drained()));
    }
    await Promise.all(vads.map((v) => v.close()));
    const after = await SileroVad.batchStats();

    expect(together).toEqual(alone);
    for (const events of alone) expect(events.map((e) => e.kind)).toEqual(['start', 'stop']);
    // Several windows per model run: the point of batching.
    const windows = (after?.windows ?? 0) - (before?.windows ?? 0);
    const batches = (after?.batches ?? 0) - (before?.batches ?? 0);
    expect(windows / batches).toBeGreaterThan(4);
  });
});

describe('SileroVad on DSP worker threads', () => {
  it('runs inference off the main thread, and gives the same decisions on the main thread (workers: 0)', async () => {
    const pcm = turn(await prompt('hello-world'), 0.5);
    const feed = async (): Promise<Events> => {
      const events: Events = [];
      const vad = await SileroVad.create({
        onSpeechStart: (at) => events.push({ kind: 'start', at }),
        onSpeechStop: (at) => events.push({ kind: 'stop', at }),
        maxBacklogSamples: pcm.length,
      });
      for (let i = 0; i + 320 <= pcm.length; i += 320) vad.write(pcm.subarray(i, i + 320));
      await vad.drained();
      await vad.close();
      return events;
    };
    const onWorkers = await feed();
    const stats = SileroVad.poolStats();
    expect(stats?.workers).toBeGreaterThanOrEqual(1);
    expect(stats?.busyMs).toBeGreaterThan(0);
    expect(onWorkers.map((e) => e.kind)).toEqual(['start', 'stop']);
    // Written all at once, the call's backlog went in multi-window requests; fed 20 ms at a time and drained,
    // one window per request: the decisions are the same.
    const stepwise: Events = [];
    const vad = await makeVad(stepwise);
    for (let i = 0; i + 320 <= pcm.length; i += 320) {
      vad.write(pcm.subarray(i, i + 320));
      await vad.drained();
    }
    await vad.close();
    expect(stepwise).toEqual(onWorkers);

    // Swap in a main-thread pool for the comparison, then restore the default one.
    await SileroVad.start();
    await SileroVad.shutdown();
    await SileroVad.start({ workers: 0 });
    try {
      expect(SileroVad.poolStats()?.workers).toBe(0);
      expect(await feed()).toEqual(onWorkers);
    } finally {
      await SileroVad.shutdown();
    }
  });

  it('a worker crash reports DspWorkerCrashedError to the calls it was running; the worker is replaced', async () => {
    const crashes: string[] = [];
    // A pool started lazily by an earlier test has no holder: take and release it so it closes.
    if (SileroVad.pool() !== undefined) {
      await SileroVad.start();
      await SileroVad.shutdown();
    }
    await SileroVad.start({ workers: 1, onWorkerCrash: (d) => crashes.push(d) });
    try {
      const speech = await prompt('hello-world');
      const errors: Error[] = [];
      const vads = await Promise.all(
        Array.from({ length: 16 }, () => SileroVad.create({ onError: (err) => errors.push(err), maxBacklogSamples: 16000 * 4 })),
      );
      // Several seconds queued per call: batches are in flight whenever the worker dies.
      for (const v of vads) v.write(speech);
      await new Promise((r) => setImmediate(r));
      SileroVad.pool()?.crashWorker(0);
      await Promise.all(vads.map((v) => v.drained()));
      expect(crashes).toHaveLength(1);
      expect(errors.length).toBeGreaterThan(0);
      for (const err of errors) expect(err).toBeInstanceOf(DspWorkerCrashedError);
      await Promise.all(vads.map((v) => v.close()));

      // The replacement serves new calls.
      const events: Events = [];
      const pcm = turn(speech, 0.3);
      const fresh = await SileroVad.create({
        onSpeechStart: (at) => events.push({ kind: 'start', at }),
        onSpeechStop: (at) => events.push({ kind: 'stop', at }),
        maxBacklogSamples: pcm.length,
      });
      for (let i = 0; i + 320 <= pcm.length; i += 320) fresh.write(pcm.subarray(i, i + 320));
      await fresh.drained();
      await fresh.close();
      expect(events.map((e) => e.kind)).toEqual(['start', 'stop']);
      expect(SileroVad.poolStats()?.crashes).toBe(1);
    } finally {
      await SileroVad.shutdown();
    }
  });
});

describe('SileroPool coalescing', () => {
  it("calls whose windows complete at different moments still share model runs when a shard serves many", async () => {
    const { SileroPool } = await import('../../src/providers/vad/silero-pool.js');
    const pool = await SileroPool.start(0);
    try {
      const leases = Array.from({ length: 32 }, () => pool.lease());
      const window = new Float32Array(512).fill(0.01);
      for (let round = 0; round < 5; round++) {
        // Each call's window arrives in an event-loop turn of its own, as socket reads do.
        await Promise.all(
          leases.map(
            (lease, k) =>
              new Promise<void>((resolve, reject) => {
                let hops = k;
                const go = (): void => {
                  if (hops-- > 0) {
                    setImmediate(go);
                    return;
                  }
                  lease.infer(window, 1, new Float32Array(256)).then(() => resolve(), reject);
                };
                go();
              }),
          ),
        );
      }
      const { batches, windows } = pool.stats();
      expect(windows).toBe(160);
      expect(windows / batches).toBeGreaterThan(2); // ≈ 4 here; 1 without coalescing
      for (const l of leases) l.release();
      // One call alone is never held back for company: each window is its own run.
      const alone = pool.lease();
      for (let i = 0; i < 3; i++) await alone.infer(window, 1, new Float32Array(256));
      expect(pool.stats().batches - batches).toBe(3);
    } finally {
      await pool.close();
    }
  });
});
