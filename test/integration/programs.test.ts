// The two programs as an operator runs them: the daemon (startup errors, SIGTERM with a live call) and
// pipecat-control (every pipecatcall command, ping, call dial, usage errors), as real child processes.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readWav } from '../../src/audio/wav.js';
import { AudiosocketClient } from '../../src/transports/audiosocket/client.js';
import { KIND_AUDIO_8K } from '../../src/transports/audiosocket/protocol.js';
import { runCli, runDaemonToExit, spawnDaemon, type DaemonProcess } from '../helpers/processes.js';
import { RpcTestClient, type EventSubscription } from '../helpers/rpc-test-client.js';
import { createTestServices, type TestServices } from '../helpers/test-app.js';
import { testRedisConfig } from '../helpers/services.js';

let services: TestServices;
let env: Record<string, string>;
let daemon: DaemonProcess;
let rpc: RpcTestClient;
let events: EventSubscription;

beforeAll(async () => {
  services = await createTestServices();
  const db = services.database.config;
  const redis = testRedisConfig();
  env = {
    POD_IP: '127.0.0.1',
    AUDIOSOCKET_LISTEN_ADDRESS: '127.0.0.1:0',
    HTTP_LISTEN_ADDRESS: '127.0.0.1:0',
    PROMETHEUS_LISTEN_ADDRESS: '127.0.0.1:0',
    DATABASE_DSN: `mysql://root@127.0.0.1:3306/${db.database}`,
    REDIS_ADDRESS: '127.0.0.1:6379',
    REDIS_DATABASE: String(redis.database),
    RABBITMQ_ADDRESS: services.rabbitUrl,
    SHUTDOWN_GRACE_SECONDS: '1',
  };
  daemon = await spawnDaemon(env);
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  events = await rpc.subscribeEvents();
}, 60_000);

afterAll(async () => {
  await events?.close();
  await rpc?.close();
  if (daemon !== undefined && daemon.child.exitCode === null) {
    daemon.kill('SIGKILL');
    await daemon.exited;
  }
  await services?.dropAll();
});

function json(text: string): Record<string, unknown> {
  return JSON.parse(text) as Record<string, unknown>;
}

describe('the daemon at startup', () => {
  it('names the unreachable dependency and its address in one line, exit 1, no secret', async () => {
    const r = await runDaemonToExit([], { ...env, DATABASE_DSN: 'mysql://root:hunter2@127.0.0.1:1/pipecat' });
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^pipecat-manager: cannot connect to MySQL at 127\.0\.0\.1:1/);
    expect(r.stderr + r.stdout).not.toContain('hunter2');
  });

  it('rejects an invalid setting with a clear error, exit 2', async () => {
    const r = await runDaemonToExit(['--unknown-calls', 'maybe'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/UNKNOWN_CALLS must be one of accept, reject/);
  });

  it('serves /healthz, /readyz and the metrics', async () => {
    const health = await fetch(`http://127.0.0.1:${daemon.httpPort}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${daemon.httpPort}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: { mysql: 'ok', redis: 'ok', rabbitmq: 'ok', admission: 'ok' } });
    const metrics = await (await fetch(`http://127.0.0.1:${daemon.metricsPort}/metrics`)).text();
    for (const name of ['active_calls', 'receive_request_process_time', 'output_frame_lateness_seconds', 'audiosocket_frames_total']) {
      expect(metrics).toContain(`pipecat_manager_${name}`);
    }
    expect(metrics).toContain('process_cpu_seconds_total');
  });
});

describe('pipecat-control', () => {
  const id = randomUUID();

  it('ping', async () => {
    const r = await runCli(['ping'], env);
    expect(r.code).toBe(0);
    expect(json(r.stdout).host_id).toBe('127.0.0.1');
  });

  it('pipecatcall start / get / list / send-message / terminate', async () => {
    const start = await runCli(
      ['pipecatcall', 'start', '--id', id, '--system-prompt', 'Be brief.', '--llm-messages', '[{"role":"user","content":"hi"}]', '--tts-type', 'espeak'],
      env,
    );
    expect(start.code, start.stderr).toBe(0);
    const row = json(start.stdout);
    expect(row.id).toBe(id);
    expect(row.llm_messages).toEqual([
      { content: 'Be brief.', role: 'system' },
      { content: 'hi', role: 'user' },
    ]);
    expect(start.stdout).toContain('\n  "id"');

    const get = await runCli(['pipecatcall', 'get', '--id', id], env);
    expect(get.code).toBe(0);
    expect(Object.keys(json(get.stdout))[0]).toBe('id');

    const list = await runCli(['pipecatcall', 'list'], env);
    expect((json(list.stdout).result as Array<{ id: string }>).map((c) => c.id)).toContain(id);

    const msg = await runCli(['pipecatcall', 'send-message', '--id', id, '--message-text', 'hello', '--run-immediately'], env);
    expect(msg.code, msg.stderr).toBe(0);
    expect(json(msg.stdout).text).toBe('hello');

    const stop = await runCli(['pipecatcall', 'terminate', '--id', id], env);
    expect(stop.code).toBe(0);
    expect(String(json(stop.stdout).tm_delete).startsWith('9999')).toBe(false);

    const late = await runCli(['pipecatcall', 'send-message', '--id', id, '--message-text', 'late'], env);
    expect(late.code).toBe(1);
    expect(json(late.stderr.trim()).error).toMatch(/404/);
  });

  it('usage errors name the flag, exit 2, JSON on stderr', async () => {
    const bad = await runCli(['pipecatcall', 'get', '--id', 'not-a-uuid'], env);
    expect(bad.code).toBe(2);
    expect(json(bad.stderr.trim().split('\n')[0] ?? '').error).toMatch(/--id/);
    const missing = await runCli(['pipecatcall', 'get'], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--id is required/);
    const unknown = await runCli(['frobnicate'], env);
    expect(unknown.code).toBe(2);
  });

  it('call dial streams a prompt, records paced frames and writes the reply WAV', async () => {
    const out = join(tmpdir(), `reply-${randomUUID()}.wav`);
    try {
      const r = await runCli(
        ['call', 'dial', '--wav', '/usr/share/asterisk/sounds/en/hello-world.wav', '--address', `127.0.0.1:${daemon.audiosocketPort}`, '--out', out, '--timeout', '0.5', '--dtmf', '1#'],
        env,
      );
      expect(r.code, r.stderr).toBe(0);
      const s = json(r.stdout);
      expect(s.rate).toBe(8000);
      expect(s.frames_received as number).toBeGreaterThan(50);
      // Paced, not dumped: lateness is a bench figure (one stall on a loaded machine shifts every later frame),
      // so this only checks that the stream was measured and that no frame arrived absurdly late.
      expect(s.frames_late as number).toBeLessThanOrEqual(s.frames_received as number);
      expect(s.max_lateness_ms as number).toBeLessThan(2000);
      expect(s.dtmf_sent).toBe('1#');
      expect(s.hangup_by).toBe('client');
      expect(existsSync(out)).toBe(true);
      const wav = readWav(readFileSync(out));
      expect(wav.sampleRate).toBe(8000);
      expect(wav.samples.length).toBe((s.frames_received as number) * 160);
    } finally {
      rmSync(out, { force: true });
    }
  });
});

describe('SIGTERM', () => {
  it('ends live calls with pipecatcall_terminated and exits 0 within the grace period', async () => {
    const id = randomUUID();
    const client = await AudiosocketClient.connect({ host: '127.0.0.1', port: daemon.audiosocketPort, uuid: id });
    await client.streamPcm(Buffer.alloc(320 * 10), KIND_AUDIO_8K);
    await events.waitFor(1);
    const deadline = Date.now() + 5000;
    while (!events.events.some((e) => (e as { type: string; data: { id: string } }).type === 'pipecatcall_initialized' && (e as { data: { id: string } }).data.id === id)) {
      if (Date.now() > deadline) throw new Error('no initialized event');
      await new Promise((r) => setTimeout(r, 10));
    }
    const t0 = Date.now();
    daemon.kill('SIGTERM');
    const code = await daemon.exited;
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    await client.closed;
    const deadline2 = Date.now() + 3000;
    const terminated = (): boolean =>
      events.events.some((e) => (e as { type: string }).type === 'pipecatcall_terminated' && (e as { data: { id: string } }).data.id === id);
    while (!terminated() && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 10));
    expect(terminated()).toBe(true);
    expect(daemon.logs.some((l) => l.msg === 'pipecatcall terminated' && l.reason === 'shutdown')).toBe(true);
  });
});
