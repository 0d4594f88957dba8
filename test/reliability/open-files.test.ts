// Issue 12, items 6 and 7, on a real daemon started under `prlimit --nofile=256`: its connection caps are sized
// from that limit, so connections past them are refused, counted and logged (rate-limited) while /healthz still
// answers; a thousand connections without a UUID make a couple of warning lines, not a thousand; and a daemon
// whose caps are configured above the limit warns at startup and reports EMFILE when it gets there.

import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestServices, type TestServices } from '../helpers/test-app.js';
import { daemonEnv } from './support/daemon-env.js';
import { textMetricSum as metricSum } from './support/metrics-text.js';
import { rawRequest } from './support/raw-http.js';
import { waitUntil } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NOFILE = 256;

interface LimitedDaemon {
  child: ChildProcess;
  pid: number;
  logs: Array<Record<string, unknown>>;
  audiosocketPort: number;
  httpPort: number;
  metricsPort: number;
}

let services: TestServices;
const children: ChildProcess[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  services = await createTestServices();
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  for (const c of children) c.kill('SIGKILL');
  await services?.dropAll();
});

/** The daemon under `prlimit --nofile=256:256`, started from the sources like test/helpers/processes.ts does. */
function startLimited(env: Record<string, string>): Promise<LimitedDaemon> {
  return new Promise((resolve, reject) => {
    const child = spawn('prlimit', [`--nofile=${NOFILE}:${NOFILE}`, '--', process.execPath, '--import', 'tsx', 'src/cmd/pipecat-manager.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const logs: Array<Record<string, unknown>> = [];
    let buffer = '';
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`no start within 60 s; stderr: ${stderr}`)), 60_000);
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('close', (code) => reject(new Error(`exited with ${String(code)}; stderr: ${stderr}`)));
    child.stdout?.on('data', (b: Buffer) => {
      buffer += b.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        logs.push(entry);
        if (entry['msg'] !== 'pipecat-manager started') continue;
        clearTimeout(timer);
        const port = (k: string): number => Number(String(entry[k]).split(':').pop()?.split('/')[0]);
        // prlimit execs node: the child's pid is the daemon's.
        resolve({ child, pid: child.pid as number, logs, audiosocketPort: port('audiosocket'), httpPort: port('http'), metricsPort: port('metrics') });
      }
    });
  });
}

function openFiles(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** A TCP connection that sends nothing (or `first`); resolves once connected. */
function tcp(port: number, first?: Buffer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      if (first !== undefined) s.write(first);
      resolve(s);
    });
    s.on('error', () => undefined);
    s.once('error', reject);
    sockets.push(s);
  });
}

async function metricsText(d: LimitedDaemon): Promise<string> {
  return (await rawRequest(d.metricsPort, '/metrics')).body;
}

const capsOf = (d: LimitedDaemon): { audiosocket: number; http: number } => {
  const line = d.logs.find((l) => l['msg'] === 'connection caps');
  return { audiosocket: Number(line?.['audiosocket']), http: Number(line?.['http']) };
};

describe('file descriptors (nofile 256)', () => {
  it('caps each listener below the limit: the excess is refused and counted, /healthz answers', async () => {
    const d = await startLimited(daemonEnv(services, { UNKNOWN_CALLS: 'accept', DEFAULT_STT_TYPE: '', DEFAULT_TTS_TYPE: '' }));
    const caps = capsOf(d);
    console.info(`nofile ${NOFILE}: caps ${JSON.stringify(caps)}, ${openFiles(d.pid)} descriptors open at idle`);
    expect(caps.audiosocket).toBeGreaterThan(0);

    // Audiosocket: 40 more connections than the cap, none sending anything.
    const audio = await Promise.all(Array.from({ length: caps.audiosocket + 40 }, () => tcp(d.audiosocketPort)));
    const closedByServer = (): number => audio.filter((s) => s.destroyed || s.readableEnded).length;
    await waitUntil('the connections past the cap to be closed', () => closedByServer() >= 40);
    expect(metricSum(await metricsText(d), 'pipecat_manager_connections_refused_total', { listener: 'audiosocket', reason: 'cap' })).toBeGreaterThanOrEqual(40);
    const capWarnings = d.logs.filter((l) => String(l['msg']).includes('too many open connections'));
    expect(capWarnings.length).toBeGreaterThan(0);
    expect(capWarnings.length).toBeLessThanOrEqual(2);

    // HTTP: every slot held by an idle client; probes still answer, the API says why it cannot.
    await Promise.all(Array.from({ length: caps.http }, () => tcp(d.httpPort)));
    await sleep(200);
    expect((await rawRequest(d.httpPort, '/healthz')).status).toBe(200);
    expect((await rawRequest(d.httpPort, '/api/calls')).status).toBe(503);
    expect(openFiles(d.pid)).toBeLessThan(NOFILE);
    expect(d.logs.some((l) => String(l['msg']).includes('open-file limit (EMFILE)'))).toBe(false);

    for (const s of sockets.splice(0)) s.destroy();
    await waitUntil('the API back once the clients left', async () => (await rawRequest(d.httpPort, '/api/calls')).status === 200);

    // 1,000 connections whose first message is audio, not a UUID: each is counted, a couple are logged.
    const audioFrame = Buffer.concat([Buffer.from([0x10, 0x01, 0x40]), Buffer.alloc(320)]);
    for (let i = 0; i < 1_000; i += 5) {
      const batch = await Promise.all(Array.from({ length: 5 }, () => tcp(d.audiosocketPort, audioFrame)));
      await waitUntil('the bad connections to be closed', () => batch.every((s) => s.destroyed || s.readableEnded), 10_000, 5);
      for (const s of batch) s.destroy();
      sockets.splice(0);
    }
    expect(metricSum(await metricsText(d), 'pipecat_manager_audiosocket_protocol_errors_total', { kind: 'no_uuid' })).toBe(1_000);
    const noUuidLines = d.logs.filter((l) => l['kind'] === 'no_uuid');
    console.info(`1,000 connections without a UUID: ${noUuidLines.length} log line(s)`);
    expect(noUuidLines.length).toBeLessThanOrEqual(3);
    d.child.kill('SIGTERM');
  }, 120_000);

  it('with caps configured past the limit: a startup warning, then EMFILE logged and counted', async () => {
    const d = await startLimited(
      daemonEnv(services, { AUDIOSOCKET_MAX_CONNECTIONS: '1000', HTTP_MAX_CONNECTIONS: '64', DEFAULT_STT_TYPE: '', DEFAULT_TTS_TYPE: '' }),
    );
    expect(d.logs.some((l) => String(l['msg']).includes('below what the configured connection caps need'))).toBe(true);
    await Promise.all(Array.from({ length: NOFILE + 20 }, () => tcp(d.audiosocketPort).catch(() => undefined)));
    await waitUntil('the EMFILE warning', () => d.logs.some((l) => String(l['msg']).includes('open-file limit (EMFILE)')), 10_000);
    for (const s of sockets.splice(0)) s.destroy();
    await waitUntil('the descriptors back', () => openFiles(d.pid) < NOFILE - 50);
    expect(metricSum(await metricsText(d), 'pipecat_manager_open_file_limit_reached_total', {})).toBeGreaterThan(0);
    // The daemon is still there and answers.
    expect((await rawRequest(d.httpPort, '/healthz')).status).toBe(200);
    d.child.kill('SIGTERM');
  }, 120_000);
});
