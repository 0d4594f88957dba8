// pipecat-control: the operator CLI (SPEC §10). JSON results on stdout, errors on stderr as {"error":"…"};
// exit 0 success, 1 failure, 2 usage error. Talks to the daemon over RabbitMQ RPC, and to its Audiosocket
// server for `call dial`.

import { loadConfig, parseConfigFlags, CONFIG_VARIABLES, flagName, type Config } from '../config.js';
import { messageOf, redactSecrets } from '../errors.js';
import { createLogger } from '../log.js';
import { Metrics } from '../metrics.js';
import { newUuid, parseUuid } from '../model/uuid.js';
import { Broker } from '../rpc/broker.js';
import { RpcClient, RpcStatusError } from '../rpc/client.js';
import { HttpRpcClient } from '../rpc/http-rpc-client.js';
import { SHARED_QUEUE, perHostQueue } from '../rpc/topology.js';
import { UsageError, parseArgs, type ParsedArgs } from './args.js';
import { dialCall } from './dial.js';
import { readFileSync } from 'node:fs';

const BOOLEAN_FLAGS = new Set(['run-immediately', 'audio-response', 'help']);
const CONFIG_FLAGS = new Set(CONFIG_VARIABLES.map(([name]) => flagName(name)));

const USAGE = `pipecat-control — operator CLI for pipecat-manager (JSON on stdout)

  pipecat-control pipecatcall get --id ID
  pipecat-control pipecatcall list [--host-id HOST]
  pipecat-control pipecatcall start [--id ID] [--reference-type call|ai_call] [--reference-id ID]
        [--customer-id ID] [--activeflow-id ID] [--llm-type T] [--llm-messages JSON|@FILE] [--system-prompt TEXT]
        [--stt-type T] [--stt-language L] [--tts-type T] [--tts-language L] [--tts-voice-id V]
  pipecat-control pipecatcall terminate --id ID
  pipecat-control pipecatcall send-message --id ID --message-text TEXT [--message-id ID]
        [--run-immediately] [--audio-response]
  pipecat-control ping [--host-id HOST]
  pipecat-control call dial --wav FILE [--id ID] [--address HOST:PORT] [--rate 8000|16000] [--out FILE]
        [--dtmf DIGITS] [--timeout SECONDS] [--greeting SECONDS]

Every daemon setting is accepted too (env, .env, or --rabbitmq-address etc.).
Without RABBITMQ_ADDRESS the commands go over HTTP to the daemon's HTTP_LISTEN_ADDRESS (with HTTP_AUTH_TOKEN);
--http URL forces HTTP to that daemon.
`;

class Cli {
  private broker: Broker | null = null;
  private rpc: RpcClient | null = null;

  constructor(
    readonly config: Config,
    readonly args: ParsedArgs,
  ) {}

  flag(name: string): string | undefined {
    return this.args.flags.get(name);
  }

  required(name: string): string {
    const v = this.flag(name);
    if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
    return v;
  }

  uuid(name: string, required: boolean): string | undefined {
    const v = required ? this.required(name) : this.flag(name);
    if (v === undefined) return undefined;
    const id = parseUuid(v);
    if (id === null) throw new UsageError(`--${name} is not a valid UUID: ${JSON.stringify(v)}`);
    return id;
  }

  bool(name: string): boolean | undefined {
    const v = this.flag(name);
    if (v === undefined) return undefined;
    if (v === 'true' || v === '1') return true;
    if (v === 'false' || v === '0') return false;
    throw new UsageError(`--${name} takes true or false`);
  }

  async client(): Promise<RpcClient> {
    if (this.rpc !== null) return this.rpc;
    const log = createLogger('silent');
    this.broker = await Broker.connect(this.config.rabbitmqAddress, log);
    this.rpc = new RpcClient({ broker: this.broker, publisher: 'pipecat-manager', metrics: new Metrics({ defaultMetrics: false }), log });
    await this.rpc.ready?.();
    return this.rpc;
  }

  /** HTTP instead of RabbitMQ: asked for with --http URL, or the daemon has no broker (same configuration). */
  httpClient(): HttpRpcClient | null {
    const url = this.flag('http');
    if (url !== undefined) return new HttpRpcClient(url, this.config.httpAuthToken);
    return this.config.rabbitmqAddress === '' ? HttpRpcClient.fromConfig(this.config) : null;
  }

  async call(queue: string, uri: string, method: 'GET' | 'POST', data?: unknown): Promise<unknown> {
    const http = this.httpClient();
    if (http !== null) return (await http.request(data === undefined ? { uri, method } : { uri, method, data })).data;
    const rpc = await this.client();
    const r = await rpc.request(queue, data === undefined ? { uri, method } : { uri, method, data });
    return r.data;
  }

  /** The host that owns a call, from its row. */
  async ownerQueue(id: string): Promise<string> {
    const row = (await this.call(SHARED_QUEUE, `/v1/pipecatcalls/${id}`, 'GET')) as { host_id?: unknown };
    const host = typeof row.host_id === 'string' && row.host_id !== '' ? row.host_id : this.config.podIp;
    return perHostQueue(host);
  }

  async close(): Promise<void> {
    this.rpc?.close();
    await this.broker?.close();
  }
}

async function run(cli: Cli): Promise<unknown> {
  const [group, command] = cli.args.positional;
  switch (`${group ?? ''} ${command ?? ''}`.trim()) {
    case 'pipecatcall get':
      return cli.call(SHARED_QUEUE, `/v1/pipecatcalls/${cli.uuid('id', true) ?? ''}`, 'GET');
    case 'pipecatcall list': {
      const host = cli.flag('host-id') ?? cli.config.podIp;
      return cli.call(SHARED_QUEUE, `/v1/pipecatcalls?host_id=${encodeURIComponent(host)}`, 'GET');
    }
    case 'pipecatcall start':
      return cli.call(SHARED_QUEUE, '/v1/pipecatcalls', 'POST', startBody(cli));
    case 'pipecatcall terminate': {
      const id = cli.uuid('id', true) ?? '';
      return cli.call(await cli.ownerQueue(id), `/v1/pipecatcalls/${id}/stop`, 'POST');
    }
    case 'pipecatcall send-message': {
      const id = cli.uuid('id', true) ?? '';
      const body = {
        pipecatcall_id: id,
        message_id: cli.flag('message-id') ?? newUuid(),
        message_text: cli.required('message-text'),
        run_immediately: cli.bool('run-immediately') ?? false,
        audio_response: cli.bool('audio-response') ?? false,
      };
      return cli.call(await cli.ownerQueue(id), '/v1/messages', 'POST', body);
    }
    case 'ping':
      return cli.call(perHostQueue(cli.flag('host-id') ?? cli.config.podIp), '/v1/ping', 'GET');
    case 'call dial':
      return dialCall(cli.config, {
        wav: cli.required('wav'),
        id: cli.uuid('id', false) ?? newUuid(),
        address: cli.flag('address'),
        rate: cli.flag('rate'),
        out: cli.flag('out'),
        dtmf: cli.flag('dtmf'),
        timeout: cli.flag('timeout'),
        greeting: cli.flag('greeting'),
      });
    default:
      throw new UsageError(group === undefined ? 'no command given' : `unknown command ${JSON.stringify(`${group} ${command ?? ''}`.trim())}`);
  }
}

function startBody(cli: Cli): Record<string, unknown> {
  let messages: unknown[] = [];
  const raw = cli.flag('llm-messages');
  if (raw !== undefined) {
    const text = raw.startsWith('@') ? readFileSync(raw.slice(1), 'utf8') : raw;
    try {
      const parsed: unknown = JSON.parse(text);
      if (!Array.isArray(parsed)) throw new Error('not an array');
      messages = parsed;
    } catch (err) {
      throw new UsageError(`--llm-messages must be a JSON array of chat messages (${messageOf(err)})`);
    }
  }
  const prompt = cli.flag('system-prompt');
  if (prompt !== undefined) messages = [{ role: 'system', content: prompt }, ...messages];
  const body: Record<string, unknown> = {
    id: cli.uuid('id', false) ?? newUuid(),
    reference_type: cli.flag('reference-type') ?? 'call',
  };
  for (const key of ['customer-id', 'activeflow-id', 'reference-id']) {
    const v = cli.uuid(key, false);
    if (v !== undefined) body[key.replace(/-/g, '_')] = v;
  }
  for (const key of ['llm-type', 'stt-type', 'stt-language', 'tts-type', 'tts-language', 'tts-voice-id']) {
    const v = cli.flag(key);
    if (v !== undefined) body[key.replace(/-/g, '_')] = v;
  }
  if (messages.length > 0) body.llm_messages = messages;
  return body;
}

function fail(code: number, message: string): never {
  process.stderr.write(`${JSON.stringify({ error: redactSecrets(message) })}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let args: ParsedArgs;
  let config: Config;
  try {
    args = parseArgs(process.argv.slice(2), BOOLEAN_FLAGS);
    if (args.flags.has('help') || args.positional[0] === 'help') {
      process.stdout.write(USAGE);
      return;
    }
    const configArgv: string[] = [];
    for (const [k, v] of args.flags) if (CONFIG_FLAGS.has(k)) configArgv.push(`--${k}=${v}`);
    config = loadConfig({ env: process.env, flags: parseConfigFlags(configArgv), dotenvDir: process.cwd() });
  } catch (err) {
    fail(2, `${messageOf(err)} (see pipecat-control --help)`);
  }
  const cli = new Cli(config, args);
  let code = 0;
  try {
    const result = await run(cli);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } catch (err) {
    code = err instanceof UsageError ? 2 : 1;
    const status = err instanceof RpcStatusError && !messageOf(err).includes(String(err.statusCode)) ? ` (status ${err.statusCode})` : '';
    const hint = err instanceof UsageError ? ' (see pipecat-control --help)' : '';
    process.stderr.write(`${JSON.stringify({ error: redactSecrets(messageOf(err)) + status + hint })}\n`);
  } finally {
    await cli.close().catch(() => undefined);
  }
  process.exitCode = code;
}

await main();
