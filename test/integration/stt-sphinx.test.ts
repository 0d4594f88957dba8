// The sphinx STT provider with the real Debian pocketsphinx_continuous on real Asterisk prompts (8 kHz WAV, upsampled
// to 16 kHz by the pipeline's own resampler): JSGF phrases, free decoding vs silence, measured word accuracy with and
// without the telephone CMN init, process cleanup, a decoder that dies, and missing packages.

import { execFileSync } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';

import { Resampler } from '../../src/audio/resampler.js';
import { readWav } from '../../src/audio/wav.js';
import { ProviderError } from '../../src/errors.js';
import { createSphinxStt, type SphinxSttSettings, type SphinxSttStream } from '../../src/providers/stt/sphinx.js';
import type { SttTranscript } from '../../src/providers/types.js';
import { waitUntil } from '../helpers/wait.js';

const SOUNDS = '/usr/share/asterisk/sounds/en';
const TRANSCRIPTS = '/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz';
const FRAME = 320; // 20 ms at 16 kHz
const log = pino({ level: 'silent' });

/** Prompts of the grammar test: one sentence each, so one utterance each. */
const GRAMMAR_PROMPTS = ['agent-pass', 'confbridge-conf-begin', 'cannot-complete-as-dialed', 'check-number-dial-again'];
/** Prompts of the accuracy measurement (no grammar). */
const ACCURACY_PROMPTS = ['conf-getpin', 'conf-onlyperson', 'demo-echodone', 'vm-passchanged', 'dir-welcome', 'queue-callswaiting'];

let work: string;
const transcriptOf = new Map<string, string>();
const streams: SphinxSttStream[] = [];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'stt-sphinx-test-'));
  for (const line of gunzipSync(readFileSync(TRANSCRIPTS)).toString('utf8').split('\n')) {
    const m = /^([a-z0-9-]+): (.+)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) transcriptOf.set(m[1], m[2]);
  }
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(streams.splice(0).map((s) => s.close()));
});

const NUMBERS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

/** Lower case words, digits spelt out, punctuation dropped: how the decoder writes. */
function words(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[0-9]/g, (d) => ` ${NUMBERS[Number(d)] ?? ''} `)
    .replace(/-/g, ' ')
    .replace(/[^a-z' ]/g, ' ')
    .split(/\s+/)
    .filter((w) => w !== '');
}

function phrase(name: string): string {
  const text = transcriptOf.get(name);
  if (text === undefined) throw new Error(`${name} is not in ${TRANSCRIPTS}`);
  return words(text).join(' ');
}

/** A prompt as the pipeline hears it: 8 kHz WAV → 16 kHz through a call's resampler (sinc_fastest, the default). */
async function prompt16k(name: string): Promise<Int16Array> {
  const wav = readWav(readFileSync(join(SOUNDS, `${name}.wav`)));
  expect(wav.sampleRate).toBe(8000);
  const r = await Resampler.create(8000, 16_000, 'sinc_fastest');
  try {
    const body = r.process(wav.samples);
    const tail = r.flush();
    const out = new Int16Array(body.length + tail.length);
    out.set(body);
    out.set(tail, body.length);
    return out;
  } finally {
    r.close();
  }
}

interface Harness {
  stream: SphinxSttStream;
  transcripts: SttTranscript[];
  fatals: Error[];
  errors: Error[];
  controller: AbortController;
}

async function open(settings: Partial<SphinxSttSettings> = {}): Promise<Harness> {
  const controller = new AbortController();
  const h = { transcripts: [] as SttTranscript[], fatals: [] as Error[], errors: [] as Error[], controller };
  const stream = (await createSphinxStt({ jsgfPath: '', ...settings }).open({
    language: 'en-US',
    signal: controller.signal,
    log,
    onTranscript: (t) => h.transcripts.push(t),
    onFatal: (e) => h.fatals.push(e),
    onError: (e) => h.errors.push(e),
  })) as SphinxSttStream;
  streams.push(stream);
  return Object.assign(h, { stream });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * 20 ms writes at ≈5× real time (Sphinx does not care about pacing; this stays within its 2 s input queue). The
 * pause is a rate limit on the input, not a wait for anything.
 */
async function feed(stream: SphinxSttStream, pcm: Int16Array): Promise<void> {
  for (let off = 0, n = 0; off < pcm.length; off += FRAME, n++) {
    stream.write(pcm.subarray(off, Math.min(pcm.length, off + FRAME)));
    if (n % 5 === 4) await sleep(4);
  }
}

function silence(seconds: number): Int16Array {
  return new Int16Array(Math.round(16_000 * seconds));
}

/** The pid of the pocketsphinx_continuous under the stream's shell. */
function decoderPid(stream: SphinxSttStream): number {
  const line = execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(stream.pid)])
    .toString()
    .split('\n')
    .find((l) => l.includes('pocketsphinx'));
  if (line === undefined) throw new Error('no pocketsphinx_continuous under the stream');
  return Number(line.trim().split(/\s+/)[0]);
}

/**
 * Resolves once the decoder has consumed everything we wrote and said all it will about it: our side of its stdin
 * is drained and the decoder has been blocked reading (state S in /proc) on three polls in a row, 50 ms apart. It
 * prints a line before it reads on, so by then the line has reached our stdout handler (the polls yield to I/O).
 */
async function decoderIdle(stream: SphinxSttStream, timeoutMs = 15_000): Promise<void> {
  const pid = decoderPid(stream);
  let sleepingPolls = 0;
  await waitUntil(
    'the decoder to go idle',
    () => {
      const state = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').charAt(0);
      sleepingPolls = state === 'S' ? sleepingPolls + 1 : 0;
      return sleepingPolls >= 3;
    },
    timeoutMs,
    50,
  );
}

/** Feeds leading silence, speech and trailing silence, and returns everything the decoder said about it. */
async function transcribe(h: Harness, pcm: Int16Array): Promise<string> {
  await feed(h.stream, silence(0.3));
  await feed(h.stream, pcm);
  await feed(h.stream, silence(1.2));
  await decoderIdle(h.stream);
  return h.transcripts.map((t) => t.text).join(' ');
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The processes of a process group (the stream's shell, cat, the decoder). */
function groupOf(pgid: number): Array<{ pid: number; comm: string }> {
  return execFileSync('ps', ['-o', 'pid=,comm=', '-g', String(pgid)])
    .toString()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [p, comm] = l.trim().split(/\s+/);
      return { pid: Number(p), comm: comm ?? '' };
    });
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Word accuracy: 1 − (substitutions + deletions + insertions) / reference words, per prompt capped at 0. */
function errorsOf(ref: string[], hyp: string[]): number {
  const d = Array.from({ length: ref.length + 1 }, (_, i) => Array.from({ length: hyp.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= ref.length; i++) {
    for (let j = 1; j <= hyp.length; j++) {
      const row = d[i]!;
      const prev = d[i - 1]!;
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (ref[i - 1] === hyp[j - 1] ? 0 : 1));
    }
  }
  return Math.min(ref.length, d[ref.length]![hyp.length]!);
}

describe('sphinx STT (Debian pocketsphinx_continuous) on Asterisk prompts', () => {
  it('with a JSGF grammar, each prompt comes out as exactly its phrase, as one final transcript', async () => {
    const phrases = GRAMMAR_PROMPTS.map(phrase);
    const grammar = join(work, 'prompts.gram');
    writeFileSync(grammar, `#JSGF V1.0;\ngrammar prompts;\npublic <prompt> = ${[...phrases, 'yes', 'no', 'goodbye'].join('\n  | ')};\n`);
    const results = await Promise.all(
      GRAMMAR_PROMPTS.map(async (name, i) => {
        const h = await open({ jsgfPath: grammar });
        await feed(h.stream, silence(0.3));
        await feed(h.stream, await prompt16k(name));
        await feed(h.stream, silence(1.0));
        await waitUntil(`the transcript of ${name}`, () => h.transcripts.length > 0);
        // Everything written was decoded: a second transcript would be here by now.
        await decoderIdle(h.stream);
        expect(h.fatals).toEqual([]);
        expect(h.stream.droppedFrames).toBe(0);
        return { name, expected: phrases[i], got: h.transcripts };
      }),
    );
    for (const r of results) expect(r.got, r.name).toEqual([{ text: r.expected, final: true }]);
  });

  it('without a grammar, speech gives text and silence gives nothing', async () => {
    const [speech, quiet] = await Promise.all([open(), open()]);
    const silenceWav = readWav(readFileSync(join(SOUNDS, 'silence', '3.wav')));
    const up = await Resampler.create(8000, 16_000, 'sinc_fastest');
    const silent = up.process(silenceWav.samples);
    up.close();
    const [text, none] = await Promise.all([transcribe(speech, await prompt16k('conf-lockednow')), transcribe(quiet, silent)]);
    expect(text.length).toBeGreaterThan(0);
    expect(words(text).length).toBeGreaterThanOrEqual(2);
    expect(none).toBe('');
    expect(speech.transcripts.every((t) => t.final && !/[<[]/.test(t.text))).toBe(true);
  });

  it('measures word accuracy with the stock and the telephone CMN init (printed)', async () => {
    const audio = await Promise.all(ACCURACY_PROMPTS.map(prompt16k));
    const run = async (cmninit: string | undefined): Promise<{ words: number; errors: number; exact: number }> => {
      const per = await Promise.all(
        ACCURACY_PROMPTS.map(async (name, i) => {
          const h = await open(cmninit === undefined ? {} : { cmninit });
          const hyp = await transcribe(h, audio[i]!);
          expect(h.stream.droppedFrames).toBe(0);
          await h.stream.close();
          const ref = words(transcriptOf.get(name) ?? '');
          return { ref: ref.length, errors: errorsOf(ref, words(hyp)) };
        }),
      );
      return {
        words: per.reduce((n, p) => n + p.ref, 0),
        errors: per.reduce((n, p) => n + p.errors, 0),
        exact: per.filter((p) => p.errors === 0).length,
      };
    };
    const stock = await run('');
    const telephone = await run(undefined);
    const pct = (r: { words: number; errors: number }): string => `${((100 * (r.words - r.errors)) / r.words).toFixed(1)} %`;
    console.log(
      `sphinx word accuracy on ${ACCURACY_PROMPTS.length} Asterisk prompts (${stock.words} words, no grammar): ` +
        `stock CMN init ${pct(stock)} (${stock.exact} exact), telephone CMN init ${pct(telephone)} (${telephone.exact} exact)`,
    );
    expect(telephone.errors).toBeLessThan(stock.errors);
  });

  it('close() ends the decoder: no shell, cat or pocketsphinx process and no listener is left', async () => {
    const h = await open();
    await feed(h.stream, silence(0.5));
    const pid = h.stream.pid!;
    expect(processAlive(pid)).toBe(true);
    const group = groupOf(pid);
    expect(group.map((p) => p.comm).sort()).toEqual(['cat', 'pocketsphinx_co', 'sh']);
    await h.stream.close();
    // Not even zombies: a zombie still answers kill(pid, 0).
    for (const p of group) expect(processAlive(p.pid), p.comm).toBe(false);
    expect(groupAlive(pid)).toBe(false);
    expect(getEventListeners(h.controller.signal, 'abort')).toHaveLength(0);
    await h.stream.close(); // idempotent
    h.stream.write(silence(0.02)); // harmless after close
    expect(h.fatals).toEqual([]);
  });

  it('close() kills a decoder that does not finish, and leaves no zombie', async () => {
    // A "decoder" that ignores the end of its input.
    const hung = join(work, 'hung-decoder');
    writeFileSync(hung, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
    const h = await open({ binary: hung, closeGraceMs: 100 });
    const pid = h.stream.pid!;
    await waitUntil('the hung decoder to run', () => groupOf(pid).some((p) => p.comm === 'sleep'), 3000);
    const group = groupOf(pid);
    const t0 = Date.now();
    await h.stream.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    for (const p of group) expect(processAlive(p.pid), p.comm).toBe(false);
    expect(h.fatals).toEqual([]);
  });

  it('the call signal closes the decoder too', async () => {
    const h = await open();
    const pid = h.stream.pid!;
    h.controller.abort();
    await waitUntil('the process group to be gone', () => !groupAlive(pid), 3000);
    expect(h.fatals).toEqual([]);
  });

  it('a decoder that dies mid-call is reported once through onFatal', async () => {
    const h = await open();
    await feed(h.stream, silence(0.3));
    const pid = h.stream.pid!;
    process.kill(decoderPid(h.stream), 'SIGKILL');
    // The shell only notices through cat's SIGPIPE on the next write, as in a live call.
    await waitUntil('the dead decoder to be reported', () => {
      if (h.fatals.length > 0) return true;
      h.stream.write(silence(0.02));
      return false;
    }, 3000, 10);
    expect(h.fatals).toHaveLength(1);
    expect(h.fatals[0]).toBeInstanceOf(ProviderError);
    expect(h.fatals[0]!.message).toMatch(/sphinx decoder exited with code 137/);
    await feed(h.stream, silence(0.2));
    await h.stream.close();
    expect(h.fatals).toHaveLength(1);
    expect(groupAlive(pid)).toBe(false);
  });

  it('a missing decoder binary or model rejects open() naming the Debian packages', async () => {
    const missingBinary = await createSphinxStt({ jsgfPath: '', binary: 'pocketsphinx_continuous_not_installed' })
      .open({ language: '', signal: new AbortController().signal, log, onTranscript: () => {}, onFatal: () => {} })
      .catch((e: unknown) => e);
    expect(missingBinary).toBeInstanceOf(ProviderError);
    expect((missingBinary as Error).message).toMatch(/pocketsphinx_continuous_not_installed.*not found in PATH.*pocketsphinx and pocketsphinx-en-us/);

    const missingModel = await createSphinxStt({ jsgfPath: '', modelDir: join(work, 'no-model') })
      .open({ language: '', signal: new AbortController().signal, log, onTranscript: () => {}, onFatal: () => {} })
      .catch((e: unknown) => e);
    expect(missingModel).toBeInstanceOf(ProviderError);
    expect((missingModel as ProviderError).provider).toBe('sphinx');
    expect((missingModel as Error).message).toMatch(/en-us model.*missing.*pocketsphinx and pocketsphinx-en-us/);

    const missingGrammar = await createSphinxStt({ jsgfPath: join(work, 'nope.gram') })
      .open({ language: '', signal: new AbortController().signal, log, onTranscript: () => {}, onFatal: () => {} })
      .catch((e: unknown) => e);
    expect(missingGrammar).toBeInstanceOf(ProviderError);
    expect((missingGrammar as Error).message).toMatch(/JSGF grammar .*nope\.gram.*cannot be read/);
  });
});
