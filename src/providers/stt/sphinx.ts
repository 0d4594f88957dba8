// Offline STT with Debian's PocketSphinx 0.8 (SPEC §3.3): one `pocketsphinx_continuous` child per call, fed the
// call's 16 kHz s16le audio on stdin; each stdout line is one utterance, delivered as a final transcript.
//
// Facts measured on this machine (Debian pocketsphinx 0.8+5prealpha, pocketsphinx-en-us):
// - `-infile /dev/stdin` must be a real pipe: Node's stdio pipes are socketpairs, which /dev/stdin cannot open.
//   Hence `sh -c 'cat | exec pocketsphinx_continuous …'`. The shell stays the parent of both and reaps them. close()
//   ends stdin; a decoder still running after the grace period is killed together with cat (the shell then reaps
//   them and exits), and the child's own process group is killed as the last resort: nothing outlives the call.
// - feat.params inside the model directory overrides `-cmninit` on the command line, so a telephone CMN needs a
//   copy of the model with its own feat.params (created once per process in os.tmpdir(), atomically by rename).
// - The stock CMN init is far from 8 kHz telephone audio upsampled to 16 kHz (nothing above 4 kHz): on 61 Asterisk
//   prompts (461 words) resampled like a call (libsamplerate sinc_fastest) and decoded through this provider, word
//   accuracy is 7.2 % with the stock value and 29.9 % with TELEPHONE_CMNINIT; with a JSGF grammar of the expected
//   phrases every prompt tried came out exact. TELEPHONE_CMNINIT is the mean of the decoder's own converged live-CMN
//   estimates on those prompts, averaged over libsamplerate and sox resampling: the estimate from one resampler alone
//   drops to 24–26 % on the other, the average gives 31–32 % on both (direct decoder runs).
// - `-vad_postspeech 25` (frames of 10 ms) ends an utterance 0.35–0.6 s after speech stops. The decoder reads
//   stdin in 2048-sample blocks, so results are never finer than 128 ms.
// - A decoder that dies leaves `sh` waiting for `cat`, which only notices on our next write (SIGPIPE): in a live call
//   that is within one 20 ms frame.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants as fsConstants, readdirSync, readFileSync } from 'node:fs';
import { access, mkdtemp, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

import { ProviderError } from '../../errors.js';
import { SttStreamBase } from '../base/stt.js';
import { providerFailure } from '../base/failure.js';
import type { SttOptions, SttProvider, SttStream } from '../types.js';

export interface SphinxSttSettings {
  /** A JSGF grammar of the expected phrases (menus, yes/no); '' = the full en-us language model. */
  jsgfPath: string;
  /** The Debian en-us model root (holding `en-us/`, `en-us.lm.bin`, `cmudict-en-us.dict`). */
  modelDir?: string;
  /** The decoder: a name looked up in PATH, or a path. Default `pocketsphinx_continuous`. */
  binary?: string;
  /** Initial cepstral means written into the model copy; '' keeps the model's stock value. Default TELEPHONE_CMNINIT. */
  cmninit?: string;
  /** Where the model copy is created. Default os.tmpdir(). */
  cacheDir?: string;
  /** close(): how long the decoder may take to finish after stdin ends before it is killed. Default 1000. */
  closeGraceMs?: number;
}

/** What a sphinx stream exposes beyond SttStream, for diagnostics and tests. */
export interface SphinxSttStream extends SttStream {
  /** The process id of the decoder's shell; also its process group id. */
  readonly pid: number | undefined;
  /** 20 ms-or-so writes dropped because the decoder fell more than 2 s behind. */
  readonly droppedFrames: number;
}

export const DEFAULT_MODEL_DIR = '/usr/share/pocketsphinx/model/en-us';
export const TELEPHONE_CMNINIT = '46.48,37.04,-27.93,36.33,-11.08,-7.38,11.17,-17.70,15.94,-5.38,-10.19,6.28,-9.53';
const PACKAGES = 'install the Debian packages pocketsphinx and pocketsphinx-en-us (apt-get install pocketsphinx pocketsphinx-en-us)';
const ACOUSTIC_FILES = ['feat.params', 'mdef', 'means', 'variances', 'sendump', 'transition_matrices', 'noisedict'];
const BYTES_PER_SECOND = 16_000 * 2;
/** Audio queued on the decoder's stdin beyond this is dropped: the decoder is not keeping up. */
const MAX_QUEUED_BYTES = 2 * BYTES_PER_SECOND;
/** `<sil>`, `<s>`, `[NOISE]`, `++BREATH++`, `(NULL)`: fillers, not words. */
const NOISE_TOKEN = /^(<[^>]*>|\[[^\]]*\]|\+\+[^+]*\+\+|\(null\))$/i;
const STDERR_TAIL = 4096;

export function createSphinxStt(settings: SphinxSttSettings): SttProvider {
  const modelDir = settings.modelDir ?? DEFAULT_MODEL_DIR;
  const binary = settings.binary ?? 'pocketsphinx_continuous';
  const cmninit = settings.cmninit ?? TELEPHONE_CMNINIT;
  const cacheDir = settings.cacheDir ?? tmpdir();
  const closeGraceMs = settings.closeGraceMs ?? 1000;

  return {
    name: 'sphinx',
    async open(o: SttOptions): Promise<SttStream> {
      if (o.signal.aborted) throw new ProviderError('sphinx', 'stt', 'the call ended before the sphinx decoder started');
      const binaryPath = await findBinary(binary);
      const acoustic = join(modelDir, 'en-us');
      await requireFiles(modelDir, [
        ...ACOUSTIC_FILES.map((f) => join(acoustic, f)),
        join(modelDir, 'cmudict-en-us.dict'),
        ...(settings.jsgfPath === '' ? [join(modelDir, 'en-us.lm.bin')] : []),
      ]);
      if (settings.jsgfPath !== '') {
        try {
          await access(settings.jsgfPath, fsConstants.R_OK);
        } catch (err) {
          throw new ProviderError('sphinx', 'stt', `the JSGF grammar ${settings.jsgfPath} (SPHINX_JSGF) cannot be read: ${codeOf(err)}`, { cause: err });
        }
      }
      let hmm: string;
      try {
        hmm = cmninit === '' ? acoustic : await telephoneModel(acoustic, cmninit, cacheDir);
      } catch (err) {
        throw new ProviderError('sphinx', 'stt', `cannot prepare the sphinx model copy in ${cacheDir}: ${codeOf(err)}`, { cause: err });
      }
      const args = [
        '-infile', '/dev/stdin',
        '-hmm', hmm,
        '-dict', join(modelDir, 'cmudict-en-us.dict'),
        ...(settings.jsgfPath === '' ? ['-lm', join(modelDir, 'en-us.lm.bin')] : ['-jsgf', settings.jsgfPath]),
        '-samprate', '16000',
        '-vad_postspeech', '25',
      ];
      if (o.language !== '' && !/^en\b/i.test(o.language)) {
        o.log.warn({ language: o.language }, 'the sphinx STT only has the en-us model: transcribing as English');
      }
      const stream = new SphinxStream(o, closeGraceMs);
      await stream.start(binaryPath, args);
      return stream;
    },
  };
}

class SphinxStream extends SttStreamBase implements SphinxSttStream {
  private child: ChildProcess | null = null;
  private state: 'starting' | 'running' | 'closed' = 'starting';
  private exited: Promise<void> = Promise.resolve();
  private stdoutRest = '';
  private stderrTail = '';

  constructor(
    o: SttOptions,
    private readonly closeGraceMs: number,
  ) {
    super('sphinx', o);
  }

  async start(binaryPath: string, args: string[]): Promise<void> {
    // "$0" is the decoder and "$@" its arguments: no quoting of paths into the script.
    const child = spawn('sh', ['-c', 'cat | exec "$0" "$@"', binaryPath, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // its own process group: the last-resort kill reaches cat and the decoder too
    });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('close', () => resolve()));
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => this.onStdout(chunk));
    child.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-STDERR_TAIL);
    });
    // EPIPE when the decoder is gone: the exit handler reports it.
    child.stdin?.on('error', () => {});
    child.stdout?.on('error', () => {});
    child.stderr?.on('error', () => {});
    child.on('exit', (code, signal) => this.onExit(code, signal));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (err) => {
        reject(new ProviderError('sphinx', 'stt', `cannot start the sphinx decoder: ${codeOf(err)}`, { cause: err }));
      });
    });
    if (this.o.signal.aborted) {
      await this.close();
      throw new ProviderError('sphinx', 'stt', 'the call ended before the sphinx decoder started');
    }
    this.state = 'running';
    this.listenForAbort();
    this.log.debug({ pid: child.pid, args }, 'sphinx decoder started');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  write(pcm: Int16Array): void {
    const stdin = this.child?.stdin;
    if (this.state !== 'running' || stdin == null || pcm.length === 0 || !stdin.writable) return;
    if (stdin.writableLength > MAX_QUEUED_BYTES) {
      this.countDropped();
      return;
    }
    // A copy: the write completes asynchronously and the caller may reuse its buffer.
    stdin.write(Buffer.from(Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength)));
  }

  private onStdout(chunk: string): void {
    const lines = (this.stdoutRest + chunk).split('\n');
    this.stdoutRest = lines.pop() ?? '';
    if (this.stdoutRest.length > 65_536) this.stdoutRest = ''; // no newline for that long: not the decoder talking
    for (const line of lines) {
      const text = line
        .trim()
        .split(/\s+/)
        .filter((w) => w !== '' && !NOISE_TOKEN.test(w))
        .join(' ');
      if (text === '' || this.state !== 'running') continue;
      this.deliver({ text, final: true });
    }
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    // The shell waits for cat and the decoder before it exits; only a shell killed by a signal leaves them behind.
    if (signal !== null) this.killGroup();
    if (this.state === 'closed') return;
    this.state = 'closed';
    const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code ?? 'unknown'}`;
    const diagnostic = lastErrorLine(this.stderrTail);
    const hint = code === 127 ? `: not found, ${PACKAGES}` : diagnostic === '' ? '' : `: ${diagnostic}`;
    // A local process that died: there is no reconnect, but a new call may well start one again.
    this.fatal(providerFailure('sphinx', 'stt', 'network', `the sphinx decoder ${how}${hint}`));
  }

  protected async shutdown(): Promise<void> {
    this.state = 'closed';
    this.stopListening();
    const child = this.child;
    if (child === null || child.pid === undefined) return; // never started
    if (child.exitCode === null && child.signalCode === null) {
      // End of input: the decoder finishes its last utterance and exits by itself, normally within ≈100 ms.
      child.stdin?.end();
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.closeGraceMs)));
      await Promise.race([this.exited, graceOver]);
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) await this.kill(child);
    }
    await this.exited;
    child.removeAllListeners();
    child.stdin?.removeAllListeners();
    child.stdout?.removeAllListeners();
    child.stderr?.removeAllListeners();
  }

  /**
   * Kills cat and the decoder first so that the shell reaps them and exits by itself: killing the whole group at
   * once can orphan them to a PID 1 that does not reap (zombies; seen here, though tini in the image would reap).
   * The group kill stays as the last resort.
   */
  private async kill(child: ChildProcess): Promise<void> {
    const pid = child.pid;
    if (pid === undefined) return;
    for (const kid of childrenOf(pid)) {
      try {
        process.kill(kid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, 500)))]);
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) this.killGroup();
  }

  private killGroup(): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // ESRCH: the whole group is gone already.
    }
  }
}

/** The model copy whose feat.params carries `cmninit`; big files are symlinks to the Debian model. */
const modelCopies = new Map<string, Promise<string>>();

function telephoneModel(acoustic: string, cmninit: string, cacheDir: string): Promise<string> {
  const key = `${acoustic}\0${cmninit}\0${cacheDir}`;
  let p = modelCopies.get(key);
  if (p === undefined) {
    p = createModelCopy(acoustic, cmninit, cacheDir);
    modelCopies.set(key, p);
    // A failure (full disk) is not remembered: the next call tries again.
    p.catch(() => modelCopies.delete(key));
  }
  return p;
}

async function createModelCopy(acoustic: string, cmninit: string, cacheDir: string): Promise<string> {
  if (!/^-?\d+(\.\d+)?(,-?\d+(\.\d+)?){12}$/.test(cmninit)) throw new Error(`cmninit must be 13 comma-separated numbers, got ${cmninit}`);
  const stock = await readFile(join(acoustic, 'feat.params'), 'utf8');
  const params = /^-cmninit\s.*$/m.test(stock)
    ? stock.replace(/^-cmninit\s.*$/m, `-cmninit ${cmninit}`)
    : `${stock.replace(/\n?$/, '\n')}-cmninit ${cmninit}\n`;
  const version = createHash('sha256').update(acoustic).update('\0').update(params).digest('hex').slice(0, 12);
  const target = join(cacheDir, `pipecat-manager-sphinx-model-${version}`);
  const entries = (await readdir(acoustic)).filter((f) => f !== 'feat.params');
  if (await isModelCopy(target, params, entries)) return target;

  const tmp = await mkdtemp(`${target}.tmp-`);
  try {
    for (const f of entries) await symlink(join(acoustic, f), join(tmp, f));
    await writeFile(join(tmp, 'feat.params'), params);
    try {
      await rename(tmp, target);
    } catch (err) {
      // Another process won the race (the target is a non-empty directory now), or a broken leftover is in the way.
      if (await isModelCopy(target, params, entries)) {
        await rm(tmp, { recursive: true, force: true });
        return target;
      }
      if (codeOf(err) !== 'ENOTEMPTY' && codeOf(err) !== 'EEXIST') throw err;
      await rm(target, { recursive: true, force: true });
      await rename(tmp, target);
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return target;
}

async function isModelCopy(dir: string, params: string, entries: string[]): Promise<boolean> {
  try {
    if ((await readFile(join(dir, 'feat.params'), 'utf8')) !== params) return false;
    for (const f of entries) await stat(join(dir, f)); // follows the symlinks: the Debian model is still there
    return true;
  } catch {
    return false;
  }
}

async function findBinary(binary: string): Promise<string> {
  const candidates = binary.includes('/')
    ? [binary]
    : (process.env.PATH ?? '/usr/bin:/bin').split(delimiter).filter((d) => d !== '').map((d) => join(d, binary));
  for (const c of candidates) {
    try {
      await access(c, fsConstants.X_OK);
      if ((await stat(c)).isFile()) return c;
    } catch {
      // not here
    }
  }
  throw new ProviderError('sphinx', 'stt', `the sphinx STT needs ${binary}, which was not found${binary.includes('/') ? '' : ' in PATH'}: ${PACKAGES}`);
}

async function requireFiles(modelDir: string, files: string[]): Promise<void> {
  for (const f of files) {
    try {
      await access(f, fsConstants.R_OK);
    } catch {
      throw new ProviderError('sphinx', 'stt', `the sphinx STT needs the en-us model in ${modelDir}, but ${f} is missing: ${PACKAGES}`);
    }
  }
}

/** Direct children of a process, from /proc (CONFIG_PROC_CHILDREN), else by scanning every /proc/<pid>/stat. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .split(/\s+/)
      .filter((p) => p !== '')
      .map(Number);
  } catch {
    // fall back to the scan
  }
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // `pid (comm) state ppid …`: comm may contain spaces and parentheses, so parse after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function lastErrorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => /^(ERROR|FATAL)/.test(l.trim()));
  return (lines[lines.length - 1] ?? '').trim().slice(0, 300);
}

function codeOf(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return err instanceof Error ? err.message : String(err);
}
