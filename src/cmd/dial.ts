// `pipecat-control call dial`: acts as Asterisk on one call. Connects to the Audiosocket server, sends the UUID,
// streams a WAV at real-time pace followed by silence (paced by the daemon's own PacedOutput and OutputClock),
// records what the bot sends, hangs up, and summarises.

import { readFileSync, writeFileSync } from 'node:fs';
import { OutputClock } from '../audio/clock.js';
import { PacedOutput } from '../audio/paced-output.js';
import { FRAME_MS, frameBytes } from '../audio/pcm.js';
import { encodeWav, readWav } from '../audio/wav.js';
import { AudiosocketClient } from '../transports/audiosocket/client.js';
import { AudiosocketFrameWriter } from '../transports/audiosocket/media.js';
import { KIND_HANGUP, isAudioKind, kindForRate } from '../transports/audiosocket/protocol.js';
import { ReplyRecorder } from '../transports/audiosocket/reply-recorder.js';
import { parseHostPort, type Config } from '../config.js';
import { UsageError } from './usage-error.js';

export interface DialOptions {
  wav: string;
  id: string;
  address: string | undefined;
  rate: string | undefined;
  out: string | undefined;
  dtmf: string | undefined;
  timeout: string | undefined;
  /** Seconds to listen to the bot's greeting before speaking (0: speak at once). */
  greeting: string | undefined;
}

export interface DialSummary {
  id: string;
  address: string;
  rate: number;
  kind: number;
  sent_ms: number;
  received_ms: number;
  frames_received: number;
  /** Connect → first non-silent bot frame (the greeting); null if the bot never spoke. */
  first_audio_ms: number | null;
  /** End of the sent audio → first non-silent bot frame after it; null if none came. */
  first_reply_ms: number | null;
  frames_late: number;
  max_lateness_ms: number;
  p50_lateness_ms: number;
  p99_lateness_ms: number;
  dtmf_sent: string;
  hangup_by: 'client' | 'daemon';
  out: string | null;
}

/** Peak absolute sample: a frame quieter than this is silence. */
const SILENCE_PEAK = 64;

function isSilent(pcm: Buffer): boolean {
  for (let i = 0; i + 1 < pcm.length; i += 2) if (Math.abs(pcm.readInt16LE(i)) > SILENCE_PEAK) return false;
  return true;
}

const round = (n: number): number => Math.round(n * 100) / 100;

export async function dialCall(config: Config, o: DialOptions): Promise<DialSummary> {
  let wav;
  try {
    wav = readWav(readFileSync(o.wav));
  } catch (err) {
    throw new UsageError(`--wav ${o.wav}: ${(err as Error).message}`);
  }
  if (wav.channels !== 1) throw new UsageError(`--wav must be mono; ${o.wav} has ${wav.channels} channels`);
  if (wav.sampleRate !== 8000 && wav.sampleRate !== 16000) {
    throw new UsageError(`--wav must be 8000 or 16000 Hz; ${o.wav} is ${wav.sampleRate} Hz`);
  }
  const rate = o.rate === undefined ? wav.sampleRate : Number(o.rate);
  if (rate !== 8000 && rate !== 16000) throw new UsageError('--rate must be 8000 or 16000');
  if (rate !== wav.sampleRate) {
    throw new UsageError(`--rate ${rate} does not match the WAV's ${wav.sampleRate} Hz; give a WAV at that rate`);
  }
  const timeoutS = o.timeout === undefined ? 10 : Number(o.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0 || timeoutS > 3600) throw new UsageError('--timeout must be seconds > 0');
  const greetingS = o.greeting === undefined ? 10 : Number(o.greeting);
  if (!Number.isFinite(greetingS) || greetingS < 0 || greetingS > 600) throw new UsageError('--greeting must be seconds ≥ 0');
  const dtmf = o.dtmf ?? '';
  if (!/^[0-9*#A-D]*$/.test(dtmf)) throw new UsageError('--dtmf takes digits 0-9 * # A-D');

  const listen = config.audiosocketListen;
  let target;
  try {
    target = o.address !== undefined ? parseHostPort(o.address, '127.0.0.1') : { ...listen };
  } catch (err) {
    throw new UsageError(`--address: ${(err as Error).message}`);
  }
  if (target.host === '0.0.0.0' || target.host === '::' || target.host === '') target.host = '127.0.0.1';

  const kind = kindForRate(rate);
  const samples = wav.samples;
  const pcm = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  const client = await AudiosocketClient.connect({ host: target.host, port: target.port, uuid: o.id });
  const connectedAt = performance.now();
  const recorder = new ReplyRecorder();
  let firstAudioAt: number | undefined;
  let speechEndAt: number | undefined;
  let firstReplyAt: number | undefined;
  let daemonHungUp = false;
  let lastBotAudioAt: number | undefined;
  client.onMessage((msg, at) => {
    if (msg.kind === KIND_HANGUP) {
      daemonHungUp = true;
      return;
    }
    if (!isAudioKind(msg.kind)) return;
    recorder.add(msg.kind, Buffer.from(msg.payload), at);
    if (isSilent(msg.payload)) return;
    firstAudioAt ??= at;
    lastBotAudioAt = at;
    if (speechEndAt !== undefined) firstReplyAt ??= at;
  });

  // The daemon's own pacing: a PacedOutput on an OutputClock (one drift-corrected 20 ms grid, as Asterisk paces its
  // frames), writing Audiosocket frames through the transport's FrameWriter. Each slot this dialer decides first
  // (start the WAV once the greeting is over, send a DTMF digit, stop after the tail); the output then writes the
  // slot's frame: the WAV while it lasts, silence otherwise.
  const clock = new OutputClock();
  const output = new PacedOutput({
    rate,
    writer: new AudiosocketFrameWriter({ writeFrame: (frame) => client.sendRaw(frame) }),
    maxFrames: Math.ceil(pcm.length / frameBytes(rate)) + 1,
  });
  const listenUntil = connectedAt + greetingS * 1000;
  const tailFrames = Math.round((timeoutS * 1000) / FRAME_MS);
  let phase: 'greeting' | 'speech' | 'dtmf' | 'tail' = greetingS > 0 ? 'greeting' : 'speech';
  let started = false;
  let digitIndex = 0;
  let gap = 0;
  let tail = 0;
  let remoteClosed = false;
  /** Runs before the output's frame of the same slot; false: the call is over, nothing more is sent. */
  const decide = (now: number): boolean => {
    if (client.isClosed) {
      remoteClosed = true;
      return false;
    }
    if (phase === 'greeting') {
      const greeted = lastBotAudioAt !== undefined && now - lastBotAudioAt > 600;
      if (!greeted && now < listenUntil) return true;
      phase = 'speech';
    }
    if (phase === 'speech') {
      if (!started) {
        started = true;
        output.push(pcm);
        output.flush();
      }
      if (output.queuedFrames > 0) return true;
      speechEndAt = now;
      phase = 'dtmf';
    }
    if (phase === 'dtmf') {
      if (gap > 0) {
        gap--;
        return true;
      }
      if (digitIndex < dtmf.length) {
        gap = 5;
        client.sendDtmf(dtmf[digitIndex++] ?? '#');
        return true;
      }
      phase = 'tail';
    }
    return tail++ < tailFrames;
  };
  await new Promise<void>((resolve) => {
    const unregister = clock.register({
      tick: () => {
        if (decide(performance.now())) {
          output.tick();
          return;
        }
        unregister();
        resolve();
      },
    });
  });
  clock.close();
  output.close();
  client.hangup();
  await Promise.race([client.closed, new Promise((r) => setTimeout(r, 1000).unref())]);
  client.destroy();

  const sentMs = Math.round(performance.now() - connectedAt);
  const stats = recorder.stats();
  let out: string | null = null;
  if (o.out !== undefined) {
    writeFileSync(o.out, encodeWav(recorder.audio(), rate));
    out = o.out;
  }
  return {
    id: o.id,
    address: `${target.host}:${target.port}`,
    rate,
    kind,
    sent_ms: sentMs,
    received_ms: Math.round(stats.receivedMs),
    frames_received: stats.frames,
    first_audio_ms: firstAudioAt === undefined ? null : Math.round(firstAudioAt - connectedAt),
    first_reply_ms: firstReplyAt === undefined || speechEndAt === undefined ? null : Math.round(firstReplyAt - speechEndAt),
    frames_late: stats.framesLate,
    max_lateness_ms: round(stats.maxLatenessMs),
    p50_lateness_ms: round(stats.p50LatenessMs),
    p99_lateness_ms: round(stats.p99LatenessMs),
    dtmf_sent: dtmf,
    hangup_by: daemonHungUp || remoteClosed ? 'daemon' : 'client',
    out,
  };
}
