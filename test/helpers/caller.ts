// An Asterisk-like caller for end-to-end tests: dials the daemon's Audiosocket server, streams real recorded
// prompts at real-time pace on one 20 ms schedule, and records every frame the bot sends with its arrival time.

import { readFileSync } from 'node:fs';
import { Resampler } from '../../src/audio/resampler.js';
import { readWav } from '../../src/audio/wav.js';
import { AudiosocketClient } from '../../src/transports/audiosocket/client.js';
import { KIND_HANGUP, isAudioKind, kindForRate } from '../../src/transports/audiosocket/protocol.js';
import { waitUntil } from './wait.js';

export const SOUNDS = '/usr/share/asterisk/sounds/en';

export interface ReceivedFrame {
  at: number;
  kind: number;
  bytes: number;
  /** Peak absolute sample. */
  peak: number;
}

/** A prompt as s16le PCM at `rate` (the WAVs are 8 kHz; 16 kHz is made with the project's resampler). */
export async function loadPrompt(name: string, rate: 8000 | 16000 = 8000): Promise<Buffer> {
  const wav = readWav(readFileSync(`${SOUNDS}/${name}.wav`));
  let samples = wav.samples;
  if (rate !== wav.sampleRate) {
    const r = await Resampler.create(wav.sampleRate, rate, 'sinc_fastest');
    const a = r.process(samples);
    const b = r.flush();
    r.close();
    samples = new Int16Array(a.length + b.length);
    samples.set(a);
    samples.set(b, a.length);
  }
  return Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
}

function peakOf(pcm: Buffer): number {
  let peak = 0;
  for (let i = 0; i + 1 < pcm.length; i += 2) {
    const v = Math.abs(pcm.readInt16LE(i));
    if (v > peak) peak = v;
  }
  return peak;
}

export class TestCaller {
  readonly frames: ReceivedFrame[] = [];
  readonly audio: Buffer[] = [];
  hangupReceived = false;
  private readonly frameBytes: number;
  private readonly queue: Array<Buffer | { dtmf: string }> = [];
  private running = true;
  private readonly loop: Promise<void>;

  private constructor(
    readonly client: AudiosocketClient,
    readonly rate: 8000 | 16000,
  ) {
    this.frameBytes = (rate / 50) * 2;
    client.onMessage((msg, at) => {
      if (msg.kind === KIND_HANGUP) this.hangupReceived = true;
      if (!isAudioKind(msg.kind)) return;
      const payload = Buffer.from(msg.payload);
      this.frames.push({ at, kind: msg.kind, bytes: payload.length, peak: peakOf(payload) });
      this.audio.push(payload);
    });
    this.loop = this.pace();
  }

  static async dial(port: number, uuid: string, rate: 8000 | 16000 = 8000): Promise<TestCaller> {
    const client = await AudiosocketClient.connect({ host: '127.0.0.1', port, uuid });
    return new TestCaller(client, rate);
  }

  get kind(): number {
    return kindForRate(this.rate);
  }

  /** Queues speech (s16le at the caller's rate): it is sent after what is already queued, 20 ms per frame. */
  say(pcm: Buffer): Promise<void> {
    for (let off = 0; off < pcm.length; off += this.frameBytes) {
      const frame = Buffer.alloc(this.frameBytes);
      pcm.copy(frame, 0, off, Math.min(pcm.length, off + this.frameBytes));
      this.queue.push(frame);
    }
    return this.drained();
  }

  dtmf(digits: string): void {
    for (const d of digits) this.queue.push({ dtmf: d });
  }

  /** Resolves when everything queued has been sent. */
  async drained(): Promise<void> {
    while (this.queue.length > 0 && this.running) await new Promise((r) => setTimeout(r, 5));
  }

  /** Bot frames carrying sound (not silence). */
  voiced(since = 0): ReceivedFrame[] {
    return this.frames.filter((f) => f.at >= since && f.peak > 200);
  }

  /** Waits until `predicate` holds, polling. */
  async until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    await waitUntil(what, predicate, timeoutMs);
  }

  /** Silence is sent whenever nothing is queued, as a quiet caller's line does. */
  private async pace(): Promise<void> {
    const silence = Buffer.alloc(this.frameBytes);
    const t0 = performance.now();
    for (let i = 0; this.running && !this.client.isClosed; i++) {
      const wait = t0 + i * 20 - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const next = this.queue.shift();
      if (next !== undefined && !Buffer.isBuffer(next)) {
        this.client.sendDtmf(next.dtmf);
        this.client.sendAudio(silence, this.kind);
      } else {
        this.client.sendAudio(next ?? silence, this.kind);
      }
    }
  }

  async hangup(): Promise<void> {
    this.running = false;
    await this.loop;
    this.client.hangup();
    await Promise.race([this.client.closed, new Promise((r) => setTimeout(r, 1000))]);
    this.client.destroy();
  }
}
