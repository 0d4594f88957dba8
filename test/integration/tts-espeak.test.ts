// The espeak-ng TTS provider against the real Debian `espeak-ng`: audible 22050 Hz audio, one words event per
// sentence, prompt kill on abort with no child left behind, clear errors, text that looks like an option.

import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ProviderError } from '../../src/errors.js';
import { createEspeakTts } from '../../src/providers/tts/espeak.js';
import type { TtsEvent, TtsSession, TtsTurn, TtsWord } from '../../src/providers/types.js';
import { waitUntil } from '../helpers/wait.js';

const log = pino({ level: 'silent' });
const tmp = mkdtempSync(join(tmpdir(), 'tts-espeak-'));

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function open(voiceId = '', language = '', binary?: string): Promise<TtsSession> {
  const provider = binary === undefined ? createEspeakTts() : createEspeakTts({ binary });
  return provider.open({ voiceId, language, signal: new AbortController().signal, log });
}

async function collect(turn: TtsTurn): Promise<TtsEvent[]> {
  const out: TtsEvent[] = [];
  for await (const e of turn.events()) out.push(e);
  return out;
}

function pcmOf(events: TtsEvent[]): Int16Array {
  const bytes = Buffer.concat(events.flatMap((e) => (e.type === 'audio' ? [e.pcm] : [])));
  const out = new Int16Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readInt16LE(i * 2);
  return out;
}

function rms(samples: Int16Array): number {
  let sum = 0;
  for (const s of samples) sum += s * s;
  return samples.length === 0 ? 0 : Math.sqrt(sum / samples.length);
}

/** espeak-ng processes whose parent is this test process (zombies included: /proc lists them until reaped). */
function espeakChildren(): Array<{ pid: number; state: string }> {
  const out: Array<{ pid: number; state: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const [state, ppid] = stat.slice(close + 2).split(' ');
    if (comm === 'espeak-ng' && Number(ppid) === process.pid) out.push({ pid: Number(name), state: state ?? '?' });
  }
  return out;
}

async function errorOf(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ProviderError);
    return err as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

const LONG_SENTENCE = `${'This sentence keeps going so that the synthesizer is still busy when the caller barges in, '.repeat(30)}the end.`;

describe('espeak-ng TTS provider (real espeak-ng)', () => {
  it('two sentences → audible 22050 Hz audio with one words event per sentence at increasing offsets', async () => {
    const session = await open();
    expect(session.sampleRate).toBe(22_050);
    expect(session.name).toBe('espeak');
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Hello there, this is the first sentence.');
    turn.say('And\u0007 here is\nthe second one.');
    turn.end();
    const events = await collect(turn);
    await session.close();

    const words: TtsWord[] = [];
    let samplesBeforeSecond = -1;
    let samples = 0;
    for (const e of events) {
      if (e.type === 'words') {
        words.push(...e.words);
        if (words.length === 2) samplesBeforeSecond = samples;
      } else samples += e.pcm.length / 2;
    }
    // Control characters and line breaks became spaces; each sentence's entry comes before its audio.
    expect(words.map((w) => w.text)).toEqual(['Hello there, this is the first sentence.', 'And here is the second one.']);
    expect(events[0]?.type).toBe('words');
    expect(words[0]?.start).toBe(0);
    expect(samplesBeforeSecond).toBeGreaterThan(22_050); // the first sentence lasts more than a second
    expect(words[1]?.start).toBeCloseTo(samplesBeforeSecond / 22_050, 9);

    const pcm = pcmOf(events);
    expect(pcm.length).toBe(samples);
    expect(pcm.length / 22_050).toBeGreaterThan(2);
    expect(rms(pcm)).toBeGreaterThan(1000); // silence is 0; espeak-ng speech measures several thousand
    for (const e of events) if (e.type === 'audio') expect(e.pcm.length % 2).toBe(0);
  });

  it('abort mid-sentence kills the process at once (< 200 ms), ends events() quietly and leaves no child', async () => {
    const session = await open('en-us');
    const ac = new AbortController();
    const turn = session.startTurn({ signal: ac.signal });
    turn.say(LONG_SENTENCE);
    turn.say('Never reached.');
    turn.end();
    const it = turn.events()[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ type: 'words' });
    expect((await it.next()).value).toMatchObject({ type: 'audio' });
    // Not reading more: the queue fills, stdout is paused, and espeak-ng blocks on its pipe mid-sentence.
    await waitUntil('the espeak-ng child', () => espeakChildren().length === 1, 1000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(espeakChildren()).toHaveLength(1);

    ac.abort();
    const gone = await waitUntil('espeak-ng to be killed and reaped', () => espeakChildren().length === 0, 1000);
    expect(gone).toBeLessThan(200);
    const t0 = performance.now();
    expect(await it.next()).toEqual({ done: true, value: undefined });
    expect(performance.now() - t0).toBeLessThan(50);
    await session.close();
    expect(espeakChildren()).toEqual([]);
  });

  it('close() kills a running process; a turn started after close is empty', async () => {
    const session = await open();
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say(LONG_SENTENCE);
    const it = turn.events()[Symbol.asyncIterator]();
    await it.next();
    await it.next();
    await waitUntil('the espeak-ng child', () => espeakChildren().length === 1, 1000);
    await session.close();
    expect(espeakChildren()).toEqual([]);
    expect(await it.next()).toEqual({ done: true, value: undefined });
    const late = session.startTurn({ signal: new AbortController().signal });
    late.say('Too late.');
    late.end();
    expect(await collect(late)).toEqual([]);
  });

  it('a text starting with "-" is spoken, not taken as an option', async () => {
    const session = await open();
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('--help me, please.');
    turn.say('-v is not a voice here.');
    turn.end();
    const events = await collect(turn);
    await session.close();
    const pcm = pcmOf(events);
    expect(pcm.length / 22_050).toBeGreaterThan(1);
    expect(rms(pcm)).toBeGreaterThan(1000);
  });

  it('the language selects the voice when no voice id is given', async () => {
    const session = await open('', 'de-DE');
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Guten Tag.');
    turn.end();
    const pcm = pcmOf(await collect(turn));
    await session.close();
    expect(rms(pcm)).toBeGreaterThan(1000);
  });

  it('a missing binary → ProviderError naming the Debian package espeak-ng', async () => {
    const err = await errorOf(open('', '', join(tmp, 'no-such-espeak-ng')));
    expect(err.provider).toBe('espeak');
    expect(err.stage).toBe('tts');
    expect(err.message).toMatch(/not found/);
    expect(err.message).toContain('Debian package espeak-ng');
  });

  it('an unknown voice → ProviderError at open()', async () => {
    const err = await errorOf(open('xx-nosuchvoice'));
    expect(err.message).toMatch(/no voice "xx-nosuchvoice"/);
    const bad = await errorOf(open('--help'));
    expect(bad.message).toMatch(/not a valid voice name/);
  });

  it('a process failing mid-turn → ProviderError from events() naming espeak-ng', async () => {
    // Passes the open() probe (`-q …`), fails every synthesis.
    const script = join(tmp, 'failing-espeak');
    writeFileSync(script, '#!/bin/sh\n[ "$1" = "-q" ] && exit 0\ncat >/dev/null\necho "synthesis exploded" >&2\nexit 3\n');
    chmodSync(script, 0o755);
    const session = await open('', '', script);
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Hello.');
    turn.end();
    const err = await errorOf(collect(turn));
    await session.close();
    expect(err.message).toContain('exited with code 3');
    expect(err.message).toContain('synthesis exploded');
    expect(err.message).toContain('espeak-ng');
  });
});
