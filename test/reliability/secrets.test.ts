// SPEC §11 / README: secrets never appear in logs, errors, metrics or CLI output. Planted secrets — provider keys
// in the environment, an ai-manager engine_key, a Redis password, an HTTP token, a wrong MySQL password (URL and
// Go DSN forms) and a wrong RabbitMQ password — go through a real daemon at debug level whose providers answer
// 401 with the credentials they were sent echoed back (as some APIs do). Every byte the programs print, every
// RPC reply, event, /metrics and /readyz text is searched for them.

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAiServer, type FakeOpenAiServer } from '../fakes/openai-server.js';
import { TestCaller } from '../helpers/caller.js';
import { runCli, runDaemonToExit, type RunResult } from '../helpers/processes.js';
import { RpcTestClient, type EventSubscription } from '../helpers/rpc-test-client.js';
import { createTestServices, type TestServices } from '../helpers/test-app.js';
import { daemonEnv } from './support/daemon-env.js';
import { startRawDaemon, type RawDaemon } from './support/raw-daemon.js';
import { RpcFlood, envelope } from './support/rpc-flood.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = 'bin-manager.pipecat-manager.request.127.0.0.1';
const AI_MANAGER = 'bin-manager.ai-manager.request';

/** Each secret has a distinctive core: found anywhere (even inside a partly masked key) it is a leak. */
const SECRETS = {
  openai: 'sk-planted-openai-Q7vX2mK9pL4rT8wZ',
  engineKey: 'sk-planted-engine-H3nB6cV1xJ5qW0eR',
  deepgram: 'dgPlantedDeepgramA1s2D3f4G5h6J7k8',
  cartesia: 'sk_car_PlantedCartesiaZ9x8C7v6B5n4',
  xai: 'xai-planted-grok-M1n2B3v4C5x6Z7l8',
  redisPassword: 'PlantedRedisPw-u7Y6t5R4e3W2',
  httpToken: 'PlantedHttpToken-i9O8p7L6k5J4',
  mysqlPassword: 'PlantedMysqlPw-a1S2d3F4g5H6',
  rabbitPassword: 'PlantedRabbitPw-q9W8e7R6t5Y4',
} as const;
const cores = Object.values(SECRETS).flatMap((s) => [s, s.replace(/^(sk-|sk_car_|xai-)/, '').slice(0, 14), encodeURIComponent(s)]);

function leaks(text: string): string[] {
  return [...new Set(cores.filter((c) => text.includes(c)))];
}

let services: TestServices;
let rpc: RpcTestClient;
let flood: RpcFlood;
let events: EventSubscription;
let openai: FakeOpenAiServer;
/** Answers every HTTP request and WebSocket upgrade with 401 and the credentials it got (Deepgram, Cartesia). */
let echo: Server;
const echoed: string[] = [];
let daemon: RawDaemon | undefined;
/** Everything printed or answered, by where it came from. */
const collected: Array<[string, string]> = [];

function echo401(req: IncomingMessage): string {
  const creds = `${req.headers.authorization ?? ''} ${req.url ?? ''}`;
  echoed.push(creds);
  return JSON.stringify({ err_code: 'INVALID_AUTH', err_msg: `Invalid credentials: ${creds}` });
}

beforeAll(async () => {
  services = await createTestServices();
  openai = await startFakeOpenAiServer();
  // Like OpenAI's "Incorrect API key provided: …", but with the whole key.
  openai.setHandler((req) => ({ error: { status: 401, message: `Incorrect API key provided: ${String(req.headers.authorization)}`, code: 'invalid_api_key' } }));
  echo = createServer((req, res) => {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(echo401(req));
  });
  echo.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    const body = echo401(req);
    socket.end(`HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  flood = await RpcFlood.connect(services.rabbitUrl);
  await rpc.withChannel((ch) => ch.assertExchange('bin-manager.pipecat-manager.event', 'fanout', { durable: true }));
  events = await rpc.subscribeEvents();
  await rpc.respondOn(AI_MANAGER, (req) => {
    const uri = String(req.uri);
    const ok = (data: unknown): Buffer => Buffer.from(JSON.stringify({ status_code: 200, data_type: 'application/json', data }));
    const m = /^\/v1\/aicalls\/([0-9a-f-]{36})$/.exec(uri);
    if (m !== null) return ok({ id: m[1], reference_type: 'conversation', reference_id: randomUUID(), ai_id: 'ai-planted' });
    if (uri === '/v1/ais/ai-planted') return ok({ id: 'ai-planted', engine_key: SECRETS.engineKey });
    return Buffer.from('{"status_code":404,"data_type":""}');
  });
});

afterAll(async () => {
  if (daemon !== undefined && daemon.child.exitCode === null) {
    daemon.child.kill('SIGKILL');
    await daemon.exited;
  }
  await events?.close();
  await flood?.close();
  await rpc?.close();
  await openai?.close();
  echo?.closeAllConnections();
  await new Promise<void>((r) => (echo === undefined ? r() : echo.close(() => r())));
  await services?.dropAll();
});

const echoPort = (): number => (echo.address() as { port: number }).port;

function runningEnv(): Record<string, string> {
  return daemonEnv(services, {
    LOG_LEVEL: 'debug',
    UNKNOWN_CALLS: 'reject',
    OPENAI_API_KEY: SECRETS.openai,
    OPENAI_BASE_URL: openai.baseUrl,
    XAI_API_KEY: SECRETS.xai,
    DEEPGRAM_API_KEY: SECRETS.deepgram,
    DEEPGRAM_BASE_URL: `http://127.0.0.1:${echoPort()}`,
    CARTESIA_API_KEY: SECRETS.cartesia,
    CARTESIA_BASE_URL: `http://127.0.0.1:${echoPort()}`,
    REDIS_PASSWORD: SECRETS.redisPassword,
    HTTP_AUTH_TOKEN: SECRETS.httpToken,
    SHUTDOWN_GRACE_SECONDS: '1',
  });
}

function keep(where: string, r: RunResult): RunResult {
  collected.push([`${where} stdout`, r.stdout], [`${where} stderr`, r.stderr]);
  return r;
}

describe('planted secrets', () => {
  it('a running daemon at debug level, with providers that echo the credentials, never shows them', async () => {
    daemon = await startRawDaemon(runningEnv());
    const d = daemon;
    const replies: string[] = [];
    const ask = async (queue: string, uri: string, method: string, data?: unknown): Promise<number | undefined> => {
      const [r] = await flood.send([{ queue, body: envelope(uri, method, data) }], `ask-${randomUUID()}`, 10_000);
      for (const x of r ?? []) replies.push(x.raw.toString());
      return r?.[0]?.status;
    };

    // 1. An ai_call: ai-manager gives the AI's engine_key; the LLM answers 401 echoing it, twice → llm_error.
    const aiCall = randomUUID();
    expect(await ask(SHARED, '/v1/pipecatcalls', 'POST', { id: aiCall, reference_type: 'ai_call', reference_id: randomUUID(), llm_type: 'openai.gpt-4o-mini' })).toBe(200);
    await waitUntil('the first LLM failure', () => openai.requests.some((r) => r.outcome !== undefined));
    expect(await ask(HOST, '/v1/messages', 'POST', { pipecatcall_id: aiCall, message_text: 'hello', run_immediately: true })).toBe(200);
    // 2. A call on the environment's OpenAI key with Deepgram (401 echoing its key) and Cartesia.
    const voiceCall = randomUUID();
    expect(await ask(SHARED, '/v1/pipecatcalls', 'POST', { id: voiceCall, reference_type: 'call', llm_type: 'openai.gpt-4o-mini', stt_type: 'deepgram', tts_type: 'cartesia', tts_voice_id: 'v1' })).toBe(200);
    const caller = await TestCaller.dial(d.audiosocketPort, voiceCall, 8000);
    // 3. A call with Cartesia only (its TLS dial to a plain server fails) and the OpenAI key from the environment.
    const ttsCall = randomUUID();
    expect(await ask(SHARED, '/v1/pipecatcalls', 'POST', { id: ttsCall, reference_type: 'call', llm_type: 'openai.gpt-4o-mini', tts_type: 'cartesia', tts_voice_id: 'v1' })).toBe(200);
    const ttsCaller = await TestCaller.dial(d.audiosocketPort, ttsCall, 8000);
    // 4. A call whose LLM uses the environment's OpenAI key (401 echoing it, twice: the greeting and a DTMF turn).
    const llmCall = randomUUID();
    expect(await ask(SHARED, '/v1/pipecatcalls', 'POST', { id: llmCall, reference_type: 'call', llm_type: 'openai.gpt-4o-mini' })).toBe(200);
    const llmCaller = await TestCaller.dial(d.audiosocketPort, llmCall, 8000);
    await waitUntil('the LLM request with the environment key', () => openai.requests.some((r) => r.headers.authorization === `Bearer ${SECRETS.openai}` && r.outcome !== undefined));
    llmCaller.dtmf('1#');
    // 5. A WebSocket upgrade without the token. (XAI_API_KEY stays unused: grok lives only at api.x.ai, and
    // these tests talk to loopback addresses alone.)
    const ws = await fetch(`http://127.0.0.1:${d.httpPort}/v1/pipecatcalls/${voiceCall}/ws`, { headers: { connection: 'Upgrade', upgrade: 'websocket' } }).catch((e: unknown) => String(e));
    collected.push(['websocket refusal', typeof ws === 'string' ? ws : await ws.text()]);

    const ended = (id: string): boolean =>
      (events.events as Array<{ type: string; data: { id?: string } }>).some((e) => e.type === 'pipecatcall_terminated' && e.data.id === id);
    await waitUntil('the failing calls to end', () => [aiCall, voiceCall, ttsCall, llmCall].every(ended), 20_000);
    for (const c of [caller, ttsCaller, llmCaller]) await c.hangup();
    // The fakes really were sent the secrets (so their echo went somewhere), and the errors were logged.
    expect(openai.requests.some((r) => r.headers.authorization === `Bearer ${SECRETS.engineKey}`)).toBe(true);
    expect(openai.requests.some((r) => r.headers.authorization === `Bearer ${SECRETS.openai}`)).toBe(true);
    expect(echoed.some((e) => e.includes(SECRETS.deepgram))).toBe(true);
    // The echoed key reached the log line, masked.
    expect(d.stdout()).toMatch(/answered HTTP 401: Incorrect API key provided: Bearer \*\*\*/);
    expect(d.stdout()).toMatch(/Deepgram live transcription at 127\.0\.0\.1:\d+: HTTP 401/);

    collected.push(['metrics', await (await fetch(`http://127.0.0.1:${d.metricsPort}/metrics`)).text()]);
    collected.push(['readyz', await (await fetch(`http://127.0.0.1:${d.httpPort}/readyz`)).text()]);
    collected.push(['rpc replies', replies.join('\n')], ['events', events.raw.map((b) => b.toString()).join('\n')]);
    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    collected.push(['daemon stdout', d.stdout()], ['daemon stderr', d.stderr()]);
    expect(d.stdout().length).toBeGreaterThan(5_000);
    for (const [where, text] of collected) expect(leaks(text), where).toEqual([]);
  }, 90_000);

  it('startup failures name the dependency, never the password (URL and Go DSN forms, RabbitMQ URL)', async () => {
    const db = services.database.config.database;
    const base = runningEnv();
    const cases: Array<[string, Record<string, string>, RegExp]> = [
      ['a wrong MySQL password (URL form)', { DATABASE_DSN: `mysql://root:${SECRETS.mysqlPassword}@127.0.0.1:3306/${db}` }, /MySQL at 127\.0\.0\.1:3306/],
      ['a wrong MySQL password (Go form)', { DATABASE_DSN: `root:${SECRETS.mysqlPassword}@tcp(127.0.0.1:3306)/${db}` }, /MySQL at 127\.0\.0\.1:3306/],
      ['a wrong RabbitMQ password', { RABBITMQ_ADDRESS: `amqp://guest:${SECRETS.rabbitPassword}@127.0.0.1:5672/${encodeURIComponent(services.vhost)}` }, /RabbitMQ at 127\.0\.0\.1:5672/],
    ];
    for (const [what, env, names] of cases) {
      const r = keep(what, await runDaemonToExit([], { ...base, ...env }));
      expect(r.code, what).toBe(1);
      expect(r.stderr, what).toMatch(names);
      expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('pipecat-manager:')), what).toHaveLength(1);
    }
    // The same password as a flag instead of the environment.
    const flagged = keep('a wrong MySQL password as a flag', await runDaemonToExit(['--database-dsn', `mysql://root:${SECRETS.mysqlPassword}@127.0.0.1:3306/${db}`], base));
    expect(flagged.code).toBe(1);
    for (const [where, text] of collected) expect(leaks(text), where).toEqual([]);
  }, 90_000);

  it('pipecat-control never prints them: a working command, a failing one, a wrong RabbitMQ password', async () => {
    const env = runningEnv();
    // No daemon is running now: a ping times out or fails; either way the output is checked.
    keep('cli ping', await runCli(['ping', '--timeout', '1'], env).catch((e: unknown) => ({ code: null, stdout: '', stderr: String(e) })));
    const wrong = keep('cli with a wrong RabbitMQ password', await runCli(['pipecatcall', 'get', '--id', randomUUID()], { ...env, RABBITMQ_ADDRESS: `amqp://guest:${SECRETS.rabbitPassword}@127.0.0.1:5672/` }));
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/RabbitMQ/);
    const flag = keep(
      'cli with the password as a flag',
      await runCli(['pipecatcall', 'list', '--rabbitmq-address', `amqp://guest:${SECRETS.rabbitPassword}@127.0.0.1:5672/`], env),
    );
    expect(flag.code).toBe(1);
    keep('cli help', await runCli(['--help'], env));
    for (const [where, text] of collected) expect(leaks(text), where).toEqual([]);
  }, 90_000);
});
