// pipecat-control against a daemon without a broker: the CLI (a real child process) talks HTTP, found from the
// same configuration (HTTP_LISTEN_ADDRESS, HTTP_AUTH_TOKEN) or given with --http URL.

import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { runCli } from '../helpers/processes.js';
import { testLogger } from '../helpers/services.js';

const TOKEN = 'cli-http-token';
let app: App;
let env: Record<string, string>;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'control-http-'));
  const config = loadConfig({
    env: {
      AUDIOSOCKET_LISTEN_ADDRESS: '127.0.0.1:0',
      HTTP_LISTEN_ADDRESS: '127.0.0.1:0',
      PROMETHEUS_LISTEN_ADDRESS: '127.0.0.1:0',
      DATABASE_PATH: join(dir, 'calls.sqlite'),
      HTTP_AUTH_TOKEN: TOKEN,
      LOG_LEVEL: 'silent',
    },
  });
  app = await App.start(config, testLogger(), { metrics: new Metrics({ defaultMetrics: false }) });
  // What an operator's shell has on the daemon's machine: the same configuration, no broker.
  env = { HTTP_LISTEN_ADDRESS: `127.0.0.1:${app.addresses.http.port}`, HTTP_AUTH_TOKEN: TOKEN };
});

afterAll(async () => {
  await app?.close();
});

describe('pipecat-control over HTTP', () => {
  it('starts, gets, lists and terminates a call with no broker configured', async () => {
    const id = randomUUID();
    const started = await runCli(['pipecatcall', 'start', '--id', id, '--llm-type', 'local.echo'], env);
    expect(started.stderr).toBe('');
    expect([started.code, JSON.parse(started.stdout)]).toMatchObject([0, { id, host_id: '127.0.0.1', llm_type: 'local.echo' }]);
    const got = await runCli(['pipecatcall', 'get', '--id', id], env);
    expect(JSON.parse(got.stdout)).toMatchObject({ id, tm_delete: '9999-01-01 00:00:00.000000' });
    const list = await runCli(['pipecatcall', 'list'], env);
    expect((JSON.parse(list.stdout) as { result: Array<{ id: string }> }).result.map((r) => r.id)).toContain(id);
    const stopped = await runCli(['pipecatcall', 'terminate', '--id', id], env);
    expect(stopped.code).toBe(0);
    expect((JSON.parse(stopped.stdout) as { tm_delete: string }).tm_delete).not.toBe('9999-01-01 00:00:00.000000');
  }, 60_000);

  it('takes --http URL, and reports a refused token and an unreachable daemon as failures (exit 1)', async () => {
    const url = `http://127.0.0.1:${app.addresses.http.port}`;
    const ping = await runCli(['ping', '--http', url], { HTTP_AUTH_TOKEN: TOKEN });
    expect([ping.code, JSON.parse(ping.stdout)]).toMatchObject([0, { host_id: '127.0.0.1' }]);

    const refused = await runCli(['ping', '--http', url], { HTTP_AUTH_TOKEN: 'wrong' });
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stderr)).toEqual({ error: expect.stringMatching(/status 401/) as unknown });

    const missing = await runCli(['pipecatcall', 'get', '--id', randomUUID()], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/status 404/);

    const down = await runCli(['ping', '--http', 'http://127.0.0.1:1'], {});
    expect(down.code).toBe(1);
    expect(JSON.parse(down.stderr)).toEqual({ error: expect.stringMatching(/cannot reach the daemon at http:\/\/127\.0\.0\.1:1/) as unknown });
  }, 60_000);
});
