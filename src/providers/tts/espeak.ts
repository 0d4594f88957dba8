// Offline TTS with Debian's `espeak-ng` (no key, no network): one child process per sentence, run one at a time
// per turn, its WAV output streamed as raw 16-bit PCM at 22050 Hz (SPEC §3.5).
//
// Measured facts (espeak-ng 1.51, Debian 12): there is no raw-PCM flag; `--stdout` writes a 44-byte RIFF header
// (mono, 16-bit, 22050 Hz) whose sizes are placeholders (0x7ffff000: the stream cannot seek back), then PCM as it is
// synthesized (first bytes ≈12 ms after spawn, ≈850× real time). Empty text gives no output at all, not even a
// header. `--stdin` reads the whole text at once (without it, stdin is spoken line by line); text on stdin is never
// parsed as options, so a sentence starting with '-' is safe. `-v` accepts language tags (`en-US`, `de-DE`, …)
// and exits 1 with "voice does not exist" otherwise.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { ProviderError } from '../../errors.js';
import { TtsSessionBase, TtsTurnBase } from '../base/tts.js';
import type { TtsEvent, TtsProvider, TtsSession, TtsSessionOptions, TtsTurnOptions } from '../types.js';

export interface EspeakTtsSettings {
  /** The espeak-ng executable (default `espeak-ng` from PATH). */
  binary?: string;
}

const PROVIDER = 'espeak';
const SAMPLE_RATE = 22_050;
const DEFAULT_VOICE = 'en-us';
const INSTALL_HINT = 'install the Debian package espeak-ng';
/** Queued audio above which the child's stdout is paused (≈5.9 s): the pipe then blocks espeak-ng itself. */
const HIGH_WATER_BYTES = 256 * 1024;
/** How much of stderr is kept for an error message. */
const STDERR_LIMIT = 2048;
// Voice names and language tags: letters, digits, `-`, `_`, `+variant`, `/` for `gmw/en-US`-style file names.
const VOICE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_+/-]{0,63}$/;
// Control characters (C0, DEL, C1) would reach espeak-ng as line breaks or garbage: they become spaces.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/g;

type Child = ChildProcessByStdio<Writable, Readable, Readable>;

export function createEspeakTts(settings: EspeakTtsSettings = {}): TtsProvider {
  const binary = settings.binary ?? 'espeak-ng';
  return {
    name: PROVIDER,
    async open(options: TtsSessionOptions): Promise<TtsSession> {
      const voice = options.voiceId !== '' ? options.voiceId : options.language !== '' ? options.language : DEFAULT_VOICE;
      if (!VOICE_PATTERN.test(voice)) {
        throw new ProviderError(PROVIDER, 'tts', `espeak-ng voice ${JSON.stringify(voice)} is not a valid voice name`);
      }
      // A quiet run with no text checks both the binary and the voice before the call relies on them (≈10 ms).
      await probe(binary, voice);
      return new EspeakSession(binary, voice, options);
    },
  };
}

function probe(binary: string, voice: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let child: Child;
    try {
      child = spawn(binary, ['-q', '-v', voice, '--stdin'], { stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      reject(spawnError(binary, err));
      return;
    }
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(0, STDERR_LIMIT)));
    child.stdout.resume();
    child.stdin.on('error', () => undefined);
    child.stdin.end();
    child.once('error', (err) => reject(spawnError(binary, err)));
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else if (/voice does not exist/i.test(stderr)) {
        reject(new ProviderError(PROVIDER, 'tts', `espeak-ng has no voice ${JSON.stringify(voice)} (see \`espeak-ng --voices\`)`));
      } else reject(exitError(code, signal, stderr));
    });
  });
}

function spawnError(binary: string, err: unknown): ProviderError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const why = code === 'ENOENT' ? `${binary} was not found` : `${binary} could not be started (${code ?? String(err)})`;
  return new ProviderError(PROVIDER, 'tts', `espeak-ng TTS is unavailable: ${why}; ${INSTALL_HINT}`, { cause: err });
}

function exitError(code: number | null, signal: NodeJS.Signals | null, stderr: string): ProviderError {
  const how = code !== null ? `exited with code ${code}` : `was killed by ${signal ?? 'a signal'}`;
  const detail = stderr.trim().split('\n')[0] ?? '';
  return new ProviderError(PROVIDER, 'tts', `espeak-ng ${how}${detail === '' ? '' : `: ${detail}`} (Debian package espeak-ng)`);
}

class EspeakSession extends TtsSessionBase<EspeakTurn> {
  readonly name = PROVIDER;
  readonly sampleRate = SAMPLE_RATE;
  /** The exits of every process started, so close() returns only once all of them were reaped. */
  private readonly exits = new Set<Promise<void>>();

  constructor(
    private readonly binary: string,
    private readonly voice: string,
    options: TtsSessionOptions,
  ) {
    super(options);
  }

  protected createTurn(options: TtsTurnOptions): EspeakTurn {
    return new EspeakTurn(this.binary, this.voice, options.signal, (exit) => {
      this.exits.add(exit);
      void exit.then(() => this.exits.delete(exit));
    });
  }

  protected async release(): Promise<void> {
    await Promise.all([...this.exits]);
  }
}

class EspeakTurn extends TtsTurnBase {
  private readonly sentences: string[] = [];
  private child: Child | null = null;
  /** PCM bytes produced so far in this turn: where the next sentence starts. */
  private bytesEmitted = 0;
  private queuedBytes = 0;

  constructor(
    private readonly binary: string,
    private readonly voice: string,
    signal: AbortSignal,
    private readonly trackExit: (exit: Promise<void>) => void,
  ) {
    // No stall watchdog: a local process either writes or exits, and its exit is always seen.
    super(PROVIDER, signal, 0);
  }

  protected sendText(text: string): void {
    const sentence = text.replace(CONTROL_CHARS, ' ').replace(/\s+/g, ' ').trim();
    if (sentence === '') return;
    this.sentences.push(sentence);
    if (this.child === null) this.next();
  }

  protected sendEnd(): void {
    if (this.child === null && this.sentences.length === 0) this.finish(null);
  }

  protected cancelProvider(): void {
    this.sentences.length = 0;
    this.child?.kill('SIGKILL');
  }

  protected override consumed(event: TtsEvent): void {
    if (event.type !== 'audio') return;
    this.queuedBytes -= event.pcm.length;
    if (this.queuedBytes < HIGH_WATER_BYTES / 2) this.child?.stdout.resume();
  }

  override finish(error: ProviderError | null): void {
    if (this.finished) return;
    if (error !== null || this.signal.aborted) this.cancelProvider();
    super.finish(error);
    // A paused stdout would keep a finished child blocked on its pipe.
    this.child?.stdout.resume();
  }

  override discard(): void {
    // Session close or abort: the running process goes at once.
    this.cancelProvider();
    this.queuedBytes = 0;
    super.discard();
  }

  /** Synthesizes the next sentence, if any; the turn ends after the last one once end() was called. */
  private next(): void {
    const sentence = this.sentences.shift();
    if (sentence === undefined) {
      if (this.ended) this.finish(null);
      return;
    }
    let child: Child;
    try {
      child = spawn(this.binary, ['--stdout', '--stdin', '-b', '1', '-v', this.voice], { stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      this.finish(spawnError(this.binary, err));
      return;
    }
    this.child = child;
    this.pushWords([{ text: sentence, start: Math.floor(this.bytesEmitted / 2) / SAMPLE_RATE }]);

    let header: Buffer | null = Buffer.alloc(0);
    let stderr = '';
    let spawnFailure: ProviderError | null = null;
    child.stdout.on('data', (bytes: Buffer) => {
      if (this.child !== child || this.finished) return;
      let buf = bytes;
      if (header !== null) {
        header = Buffer.concat([header, buf]);
        const start = pcmStart(header);
        if (start === undefined) return;
        if (start < 0) {
          this.finish(new ProviderError(PROVIDER, 'tts', 'espeak-ng wrote something that is not a 16-bit mono 22050 Hz WAV stream'));
          child.kill('SIGKILL');
          return;
        }
        buf = header.subarray(start);
        header = null;
      }
      if (buf.length === 0) return;
      this.bytesEmitted += buf.length;
      this.queuedBytes += buf.length;
      this.pushAudio(buf);
      if (this.queuedBytes > HIGH_WATER_BYTES) child.stdout.pause();
    });
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(0, STDERR_LIMIT)));
    // EPIPE when the process dies before reading its text: its exit status reports the failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(sentence, 'utf8');
    this.trackExit(
      new Promise<void>((resolve) => {
        let settled = false;
        const settle = (code: number | null, signal: NodeJS.Signals | null): void => {
          if (settled) return;
          settled = true;
          resolve();
          if (this.child !== child) return;
          this.child = null;
          if (this.finished) return;
          if (spawnFailure !== null) this.finish(spawnFailure);
          else if (code !== 0) this.finish(exitError(code, signal, stderr));
          else this.next();
        };
        // 'close' comes once the exit was reaped and the pipes drained; Node also emits it after a spawn error
        // (code -2 for ENOENT), but a child that never got a pid is settled from 'error' in any case.
        child.once('close', settle);
        child.once('error', (err) => {
          spawnFailure ??= spawnError(this.binary, err);
          if (child.pid === undefined) settle(null, null);
        });
      }),
    );
  }
}

/**
 * Where the PCM starts in a WAV stream's first bytes: undefined until the header is complete, -1 when it is not
 * 16-bit mono PCM at 22050 Hz. Chunks before `data` (none from espeak-ng today) are skipped.
 */
function pcmStart(buf: Buffer): number | undefined {
  if (buf.length < 12) return undefined;
  if (buf.toString('latin1', 0, 4) !== 'RIFF' || buf.toString('latin1', 8, 12) !== 'WAVE') return -1;
  let pos = 12;
  while (pos + 8 <= buf.length) {
    const id = buf.toString('latin1', pos, pos + 4);
    const size = buf.readUInt32LE(pos + 4);
    if (id === 'data') return pos + 8;
    if (id === 'fmt ') {
      if (pos + 8 + 16 > buf.length) return undefined;
      const channels = buf.readUInt16LE(pos + 10);
      const rate = buf.readUInt32LE(pos + 12);
      const bits = buf.readUInt16LE(pos + 22);
      if (channels !== 1 || rate !== SAMPLE_RATE || bits !== 16) return -1;
    }
    pos += 8 + size + (size % 2);
    if (pos > 4096) return -1; // a real header is 44 bytes: this is not one
  }
  return undefined;
}
