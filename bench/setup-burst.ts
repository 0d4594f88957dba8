// Call setup under load (issue 9), standalone: `npx tsx bench/setup-burst.ts [--out file.json] [--playing 30]
// [--burst 10]`. Builds and starts the real daemon with the zero-latency provider fakes, then measures
//   1. greeting time (UUID → first bot audio on the wire) of the first call after start, against later calls;
//   2. the worst inter-frame gap seen by N playing calls while M new calls connect at once, against the same
//      calls' worst gap in a quiet window just before.
// The callers run in this process on one shared 20 ms sender; the quiet-window figure shows what that costs.

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { AudiosocketClient } from '../src/transports/audiosocket/client.js';
import { KIND_AUDIO_8K, isAudioKind } from '../src/transports/audiosocket/protocol.js';
import { BenchDaemon, ROOT } from './lib/daemon.js';
import { startFakes } from './lib/fakes.js';
import { createBenchServices } from './lib/services.js';

const run = promisify(execFile);

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const PLAYING = Number(arg('playing', '30'));
const BURST = Number(arg('burst', '10'));
const GREETINGS = Number(arg('greetings', '10'));
const OUT = arg('out', `${ROOT}/bench/results-setup-burst.json`);
const VOICED_PEAK = 200;

interface Line {
  client: AudiosocketClient;
  connectedAt: number;
  firstVoicedAt: number;
  /** Arrival times of the daemon's audio frames. */
  arrivals: number[];
}

function peak(pcm: Uint8Array): number {
  const v = new DataView(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  let p = 0;
  for (let i = 0; i + 1 < pcm.length; i += 2) p = Math.max(p, Math.abs(v.getInt16(i, true)));
  return p;
}

async function dial(port: number): Promise<Line> {
  const connectedAt = performance.now();
  const client = await AudiosocketClient.connect({ host: '127.0.0.1', port, uuid: randomUUID() });
  const line: Line = { client, connectedAt, firstVoicedAt: 0, arrivals: [] };
  client.onMessage((msg, at) => {
    if (!isAudioKind(msg.kind)) return;
    line.arrivals.push(at);
    if (line.firstVoicedAt === 0 && peak(msg.payload) > VOICED_PEAK) line.firstVoicedAt = at;
  });
  return line;
}

async function until(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Worst gap between consecutive frames of one line that arrived within [from, to). */
function worstGap(line: Line, from: number, to: number): number {
  let worst = 0;
  for (let i = 1; i < line.arrivals.length; i++) {
    const at = line.arrivals[i] as number;
    if (at < from || at >= to) continue;
    worst = Math.max(worst, at - (line.arrivals[i - 1] as number));
  }
  return worst;
}

function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? 0 : (s[Math.min(s.length - 1, Math.floor(q * s.length))] as number);
}

const round = (x: number): number => Math.round(x * 10) / 10;

async function main(): Promise<void> {
  console.log('building the daemon (npm run build)…');
  await run('npm', ['run', 'build'], { cwd: ROOT });
  const services = await createBenchServices();
  const fakes = await startFakes();
  let daemon: BenchDaemon | undefined;
  const lines: Line[] = [];
  // Every line sends 8 kHz silence every 20 ms, as the AudioSocket application does.
  const silence = Buffer.alloc(320);
  const sender = setInterval(() => {
    for (const l of lines) if (!l.client.isClosed) l.client.sendAudio(silence, KIND_AUDIO_8K);
  }, 20);
  try {
    const startedAt = performance.now();
    daemon = await BenchDaemon.start({
      env: {
        DATABASE_DSN: `mysql://root@127.0.0.1:3306/${services.database}`,
        REDIS_ADDRESS: '127.0.0.1:6379',
        REDIS_DATABASE: String(services.redisDb),
        RABBITMQ_ADDRESS: services.rabbitUrl,
        UNKNOWN_CALLS: 'accept',
        ...fakes.env,
      },
    });
    const readyMs = performance.now() - startedAt;
    console.log(`daemon ready in ${Math.round(readyMs)} ms (pid ${daemon.pid})`);
    const port = daemon.audiosocketPort;

    // 1. Greeting time: the first call after start, then later calls one at a time.
    const greetings: number[] = [];
    for (let i = 0; i < GREETINGS; i++) {
      const l = await dial(port);
      lines.push(l);
      await until(() => l.firstVoicedAt > 0, 'a greeting');
      greetings.push(l.firstVoicedAt - l.connectedAt);
      l.client.hangup();
      await l.client.closed;
      lines.splice(lines.indexOf(l), 1);
      await sleep(200);
    }
    const [first = 0, ...later] = greetings;
    console.log(`greeting: first call ${round(first)} ms; later calls p50 ${round(quantile(later, 0.5))} ms, p95 ${round(quantile(later, 0.95))} ms`);

    // 2. Setup burst: PLAYING established calls, then BURST new calls connect at once.
    const playing: Line[] = [];
    for (let i = 0; i < PLAYING; i++) {
      const l = await dial(port);
      lines.push(l);
      playing.push(l);
    }
    await until(() => playing.every((l) => l.firstVoicedAt > 0), 'the playing calls to greet', 120_000);
    await sleep(1500);
    const quietFrom = performance.now();
    await sleep(2000);
    const burstAt = performance.now();
    const burst = await Promise.all(Array.from({ length: BURST }, () => dial(port)));
    lines.push(...burst);
    await until(() => burst.every((l) => l.firstVoicedAt > 0), 'the new calls to greet', 120_000);
    await sleep(1000);
    const burstEnd = performance.now();
    const quietGaps = playing.map((l) => worstGap(l, quietFrom, burstAt));
    const burstGaps = playing.map((l) => worstGap(l, burstAt, burstEnd));
    const burstGreetings = burst.map((l) => l.firstVoicedAt - l.connectedAt);
    console.log(
      `burst of ${BURST} setups over ${PLAYING} playing calls: worst inter-frame gap ${round(Math.max(...burstGaps))} ms ` +
        `(p95 over calls ${round(quantile(burstGaps, 0.95))} ms); quiet window before: worst ${round(Math.max(...quietGaps))} ms`,
    );
    console.log(`greeting of the burst calls: p50 ${round(quantile(burstGreetings, 0.5))} ms, max ${round(Math.max(...burstGreetings))} ms`);

    const result = {
      at: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '', loadavg: loadavg().map(round) },
      daemonReadyMs: round(readyMs),
      greetingMs: { firstAfterStart: round(first), later: later.map(round), laterP50: round(quantile(later, 0.5)), laterP95: round(quantile(later, 0.95)) },
      burst: {
        playingCalls: PLAYING,
        newCalls: BURST,
        worstGapMs: round(Math.max(...burstGaps)),
        worstGapP95OverCallsMs: round(quantile(burstGaps, 0.95)),
        quietWindowWorstGapMs: round(Math.max(...quietGaps)),
        newCallGreetingP50Ms: round(quantile(burstGreetings, 0.5)),
        newCallGreetingMaxMs: round(Math.max(...burstGreetings)),
      },
    };
    await writeFile(OUT, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`written ${OUT}`);
  } finally {
    clearInterval(sender);
    for (const l of lines) l.client.destroy();
    if (daemon !== undefined) await daemon.stop();
    await fakes.close();
    await services.cleanup([]);
  }
}

await main();
