// The daemon's configuration (SPEC §11): environment, an optional .env file and kebab-case flags, validated once
// into one frozen object. Nothing else in src/ reads process.env.

import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { ConfigError } from './errors.js';

export type ResamplerQuality = 'sinc_fastest' | 'sinc_medium' | 'sinc_best';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface HostPort {
  host: string;
  port: number;
}

export interface DatabaseConfig {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /**
   * true (default): create the database and apply the migrations at startup. false (DATABASE_MIGRATE=off, for a
   * user without DDL rights): apply no DDL, only check that the table and columns the daemon needs exist.
   */
  migrate?: boolean;
}

export interface Config {
  podIp: string;
  audiosocketListen: HostPort;
  httpListen: HostPort;
  httpAuthToken: string;
  prometheusListen: HostPort;
  prometheusEndpoint: string;
  /** MySQL/MariaDB; null = the embedded SQLite file at databasePath (no DATABASE_DSN configured). */
  database: DatabaseConfig | null;
  databasePath: string;
  /** null = no cache (no REDIS_ADDRESS configured). */
  redis: { host: string; port: number; password: string; database: number } | null;
  /** '' = no broker: no RPC server, no events on RabbitMQ (control over HTTP instead). */
  rabbitmqAddress: string;
  /** '' = none; else every event is also POSTed here. */
  eventsWebhookUrl: string;
  unknownCalls: 'accept' | 'reject';
  callManager: boolean;
  defaults: {
    llmType: string;
    sttType: string;
    ttsType: string;
    ttsVoiceId: string;
    systemPrompt: string;
  };
  keys: {
    openai: string;
    xai: string;
    deepgram: string;
    cartesia: string;
    /** Keys of the providers added for ai-manager's types (SPEC §3.5), by provider/vendor name. */
    elevenlabs: string;
    anthropic: string;
    gemini: string;
    groq: string;
    openrouter: string;
    deepseek: string;
    mistral: string;
    cerebras: string;
    fireworks: string;
    perplexity: string;
    together: string;
    sambanova: string;
    nvidia: string;
    qwen: string;
  };
  elevenlabsBaseUrl: string;
  anthropicBaseUrl: string;
  geminiBaseUrl: string;
  openaiBaseUrl: string;
  deepgramBaseUrl: string;
  cartesiaBaseUrl: string;
  sphinxJsgf: string;
  resamplerQuality: ResamplerQuality;
  idleTimeoutSeconds: number;
  shutdownGraceSeconds: number;
  audiosocketHandshakeTimeoutMs: number;
  audiosocketMaxFrameBytes: number;
  /** A call created over RPC whose media has not connected after this long ends (reason no_media). */
  mediaConnectTimeoutSeconds: number;
  /** DTMF from Asterisk: a user turn (`turn`) or only activity (`ignore`: ai-manager forwards key presses itself). */
  audiosocketDtmf: 'turn' | 'ignore';
  logLevel: LogLevel;
  /** Instance defaults of the per-call turn-taking settings (vad_config keys override them; issue 13). */
  turns: { falseInterruptionSecs: number; minStopSecs: number; maxStopSecs: number; preemptive: boolean };
  httpAllowedHosts: readonly string[];
  httpAllowedOrigins: readonly string[];
  sigusr1Inspector: boolean;
  databaseQueryTimeoutMs: number;
  limits: InputLimits;
  /** 0 = derived from the nofile limit at startup (src/http/connection-limits.ts). */
  maxConnections: { audiosocket: number; http: number; websocket: number };
  /** Hard cap on live calls; 0 = no cap (admission still refuses on overload). */
  maxCalls: number;
  /** DSP worker threads for VAD inference; null = one per spare core; 0 = on the main thread. */
  dspWorkers: number | null;
  /** Refuse new calls when headroom runs out (event loop, clock, workers, CPU); MAX_CALLS applies either way. */
  admissionControl: boolean;
}

/** Sizes of caller input beyond which a request is refused with 400 (issue 12, item 5). */
export interface InputLimits {
  rpcRequestBytes: number;
  llmMessagesBytes: number;
  llmMessagesDepth: number;
  messageTextChars: number;
}

/** Every variable the daemon reads, with its default ('' = unset). The order is the README's. */
export const CONFIG_VARIABLES: ReadonlyArray<readonly [name: string, defaultValue: string, doc: string]> = [
  ['POD_IP', '127.0.0.1', "This instance's host id: stored as host_id, suffix of its per-host RPC queue, the host Asterisk connects to"],
  ['AUDIOSOCKET_LISTEN_ADDRESS', '${POD_IP}:8080', 'TCP address of the Audiosocket server'],
  ['HTTP_LISTEN_ADDRESS', '127.0.0.1:8001', 'HTTP server: /healthz, /readyz, WebSocket media/monitor'],
  ['HTTP_AUTH_TOKEN', '', 'When set, the console API, the HTTP control API (/v1/…) and WebSocket upgrades need `Authorization: Bearer <token>` or `?token=`; required when HTTP_LISTEN_ADDRESS is not loopback'],
  ['PROMETHEUS_LISTEN_ADDRESS', '127.0.0.1:2112', 'Metrics HTTP listener (`:2112` = every interface, as the Dockerfile sets)'],
  ['PROMETHEUS_ENDPOINT', '/metrics', 'Metrics path'],
  ['DATABASE_DSN', '', 'MySQL/MariaDB, e.g. mysql://root@127.0.0.1:3306/pipecat (the Go form user:pass@tcp(host:port)/db too); unset = embedded SQLite at DATABASE_PATH'],
  ['DATABASE_PATH', 'data/pipecat-manager.sqlite', 'The embedded SQLite file when DATABASE_DSN is unset (created with its directory)'],
  ['DATABASE_MIGRATE', 'on', 'on: create the MySQL database and apply schema migrations at startup; off: no DDL, only check that the table and columns exist (a MySQL user without DDL rights; SQLite is always migrated)'],
  ['REDIS_ADDRESS', '', 'Redis host:port, e.g. 127.0.0.1:6379; unset = no cache'],
  ['REDIS_PASSWORD', '', 'Redis password'],
  ['REDIS_DATABASE', '1', 'Redis database index'],
  ['RABBITMQ_ADDRESS', '', 'RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672; unset = no RPC server and no events on a broker (control over HTTP)'],
  ['EVENTS_WEBHOOK_URL', '', 'When set, every event is also POSTed here as JSON (retried with backoff, bounded queue)'],
  ['UNKNOWN_CALLS', 'accept', 'Audiosocket connection with an unknown UUID: accept (create a call with the defaults) or reject'],
  ['CALL_MANAGER', 'off', 'on: ask call-manager for external media on create and delete it on termination (needs RABBITMQ_ADDRESS)'],
  ['DEFAULT_LLM_TYPE', 'local.echo', 'LLM when a create has no llm_type, and for unknown Audiosocket calls; empty: a create without llm_type is a 400'],
  ['DEFAULT_STT_TYPE', 'sphinx', 'STT for unknown Audiosocket calls'],
  ['DEFAULT_TTS_TYPE', 'espeak', 'TTS for unknown Audiosocket calls'],
  ['DEFAULT_TTS_VOICE_ID', '', 'TTS voice for unknown Audiosocket calls'],
  ['DEFAULT_SYSTEM_PROMPT', 'You are a friendly receptionist on a phone line. Greet the caller briefly, answer in one or two short sentences, and ask how you can help.', 'System prompt for calls created without llm_messages'],
  ['OPENAI_API_KEY', '', 'OpenAI key when ai-manager gives none'],
  ['OPENAI_BASE_URL', '', 'OpenAI-compatible base URL'],
  ['XAI_API_KEY', '', 'xAI (grok) key'],
  ['DEEPGRAM_API_KEY', '', 'Deepgram key'],
  ['DEEPGRAM_BASE_URL', '', 'Deepgram base URL (http(s)://…)'],
  ['CARTESIA_API_KEY', '', 'Cartesia key'],
  ['CARTESIA_BASE_URL', '', 'Cartesia base URL'],
  ['SPHINX_JSGF', '', 'Optional JSGF grammar file for the sphinx STT'],
  ['ELEVENLABS_API_KEY', '', 'ElevenLabs key (tts_type elevenlabs)'],
  ['ELEVENLABS_BASE_URL', '', 'ElevenLabs base URL (http(s)://…; the TTS WebSocket is derived from it)'],
  ['ANTHROPIC_API_KEY', '', 'Anthropic key when ai-manager gives none (llm_type anthropic.<model>)'],
  ['ANTHROPIC_BASE_URL', '', 'Anthropic base URL'],
  ['GEMINI_API_KEY', '', 'Google Gemini API key when ai-manager gives none (llm_type gemini.<model>)'],
  ['GEMINI_BASE_URL', '', 'Gemini API base URL'],
  ['GROQ_API_KEY', '', 'Groq key (else OPENAI_API_KEY, as before)'],
  ['OPENROUTER_API_KEY', '', 'OpenRouter key (else OPENAI_API_KEY, as before)'],
  ['DEEPSEEK_API_KEY', '', 'DeepSeek key (else OPENAI_API_KEY, as before)'],
  ['MISTRAL_API_KEY', '', 'Mistral key (else OPENAI_API_KEY, as before)'],
  ['CEREBRAS_API_KEY', '', 'Cerebras key'],
  ['FIREWORKS_API_KEY', '', 'Fireworks AI key'],
  ['PERPLEXITY_API_KEY', '', 'Perplexity key'],
  ['TOGETHER_API_KEY', '', 'Together AI key'],
  ['SAMBANOVA_API_KEY', '', 'SambaNova key'],
  ['NVIDIA_API_KEY', '', 'NVIDIA NIM (build.nvidia.com) key'],
  ['QWEN_API_KEY', '', 'Alibaba Cloud Model Studio (DashScope) key for qwen'],
  ['RESAMPLER_QUALITY', 'sinc_fastest', 'sinc_fastest | sinc_medium | sinc_best'],
  ['IDLE_TIMEOUT_SECONDS', '300', 'No speech either way for this long ends the call (reason idle)'],
  ['MEDIA_CONNECT_TIMEOUT_SECONDS', '30', 'A call created over RPC whose media never connects ends after this long (reason no_media)'],
  ['AUDIOSOCKET_DTMF', 'turn', 'DTMF from Asterisk: turn (a user turn for the bot) or ignore (activity only)'],
  ['SHUTDOWN_GRACE_SECONDS', '30', 'On SIGTERM, how long live calls may go on before they are ended'],
  ['AUDIOSOCKET_HANDSHAKE_TIMEOUT_MS', '5000', 'Time allowed for the first (UUID) message'],
  ['AUDIOSOCKET_MAX_FRAME_BYTES', '16384', 'Largest Audiosocket payload accepted'],
  ['LOG_LEVEL', 'info', 'trace | debug | info | warn | error | fatal | silent'],
  ['TURN_FALSE_INTERRUPTION_SECS', '1.0', 'Barge-in pauses the bot; with no transcript words this long after the onset it resumes (0: cancel at once, the classic barge-in); vad_config.false_interruption_secs'],
  ['TURN_MIN_STOP_SECS', '0.3', 'Silence that ends a turn whose words are a complete sentence or question (≤ stop_secs); vad_config.min_stop_secs'],
  ['TURN_MAX_STOP_SECS', '1.6', 'Silence that ends a turn whose words trail off ("and", "um", a comma) (≥ stop_secs); vad_config.max_stop_secs'],
  ['TURN_PREEMPTIVE_GENERATION', 'on', 'Start the reply on the words at the first pause, thrown away unheard if the turn goes on; vad_config.preemptive_generation'],
  ['HTTP_ALLOWED_HOSTS', '', 'Comma-separated extra Host names the HTTP server answers (loopback names, the listen host and POD_IP always)'],
  ['HTTP_ALLOWED_ORIGINS', '', 'Comma-separated extra browser origins (https://ops.example.com) allowed to change state and open WebSockets'],
  ['SIGUSR1_INSPECTOR', 'off', 'on: SIGUSR1 opens the Node inspector on 127.0.0.1:9229 (Node\'s default); off: it is logged and ignored'],
  ['DATABASE_QUERY_TIMEOUT_MS', '2000', 'A MySQL query taking longer fails (the RPC answers 500 naming MySQL)'],
  ['RPC_MAX_REQUEST_BYTES', '1048576', 'Largest RPC request envelope accepted; larger ones are answered 400'],
  ['LLM_MESSAGES_MAX_BYTES', '262144', 'Largest llm_messages of a create, as JSON bytes'],
  ['LLM_MESSAGES_MAX_DEPTH', '16', 'Deepest JSON nesting inside llm_messages'],
  ['MESSAGE_TEXT_MAX_CHARS', '8192', 'Longest message_text of POST /v1/messages (and RTVI send-text content)'],
  ['AUDIOSOCKET_MAX_CONNECTIONS', '0', 'Open Audiosocket connections at most; 0 = derived from the nofile limit'],
  ['HTTP_MAX_CONNECTIONS', '0', 'Open HTTP connections at most (WebSockets included); 0 = derived from the nofile limit'],
  ['WEBSOCKET_MAX_CONNECTIONS', '0', 'Open WebSocket connections at most; 0 = derived from the nofile limit'],
  ['MAX_CALLS', '0', 'Hard cap on live calls on this instance (0 = none); beyond it new calls are refused'],
  ['DSP_WORKERS', '', 'Worker threads for VAD inference (unset = one per core beyond the first; 0 = main thread)'],
  ['ADMISSION_CONTROL', 'on', 'on: stop taking calls (leave the shared queue, /readyz 503) before the headroom runs out'],
];

const KNOWN = new Set(CONFIG_VARIABLES.map(([name]) => name));

/** Flag name for a variable: DATABASE_DSN → database-dsn. */
export function flagName(variable: string): string {
  return variable.toLowerCase().replace(/_/g, '-');
}

export interface ConfigSources {
  env?: NodeJS.ProcessEnv;
  /** Values given on the command line, by variable name (src/cmd turns `--database-dsn` into DATABASE_DSN). */
  flags?: Record<string, string>;
  /** Directory whose .env is read; undefined = none. */
  dotenvDir?: string;
}

/** Reads the .env file of a directory, if there is one. */
export function readDotenv(dir: string): Record<string, string> {
  const path = resolve(dir, '.env');
  if (!existsSync(path)) return {};
  return parseDotenv(readFileSync(path));
}

/** Builds and validates the configuration: flags override env, env overrides .env, .env overrides defaults. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const fromFile = sources.dotenvDir !== undefined ? readDotenv(sources.dotenvDir) : {};
  const env = sources.env ?? {};
  const flags = sources.flags ?? {};
  const errors: string[] = [];
  for (const name of Object.keys(flags)) if (!KNOWN.has(name)) errors.push(`unknown setting ${name}`);
  const raw = (name: string): string | undefined => {
    if (flags[name] !== undefined) return flags[name];
    if (env[name] !== undefined && KNOWN.has(name)) return env[name];
    return fromFile[name];
  };
  const get = (name: string): string => {
    const v = raw(name);
    if (v !== undefined) return v;
    const def = CONFIG_VARIABLES.find(([n]) => n === name)?.[1] ?? '';
    return def;
  };
  const int = (name: string, min: number, max: number): number => {
    const text = get(name).trim();
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
      errors.push(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
      return min;
    }
    return n;
  };
  const secs = (name: string, min: number, max: number): number => {
    const text = get(name).trim();
    const n = Number(text);
    if (!/^\d+(\.\d+)?$/.test(text) || n < min || n > max) {
      errors.push(`${name} must be a number of seconds from ${min} to ${max}, got ${JSON.stringify(text)}`);
      return min;
    }
    return n;
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[]): T => {
    const v = get(name).trim().toLowerCase();
    if ((allowed as readonly string[]).includes(v)) return v as T;
    errors.push(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
    return allowed[0] as T;
  };
  const hostPort = (name: string, text: string, defaultHost: string): HostPort => {
    try {
      return parseHostPort(text, defaultHost);
    } catch (err) {
      errors.push(`${name}: ${(err as Error).message}`);
      return { host: defaultHost, port: 0 };
    }
  };

  const podIp = get('POD_IP').trim();
  if (podIp === '') errors.push('POD_IP must not be empty');
  const audiosocketText = raw('AUDIOSOCKET_LISTEN_ADDRESS') ?? `${podIp}:8080`;

  // An unset address means the embedded part (SQLite, no cache, no broker): a fresh machine runs with no service.
  let database: DatabaseConfig | null = null;
  const dsn = get('DATABASE_DSN').trim();
  if (dsn !== '') {
    try {
      database = parseDatabaseDsn(dsn);
    } catch (err) {
      errors.push(`DATABASE_DSN: ${(err as Error).message}`);
    }
  }
  const migrate = oneOf('DATABASE_MIGRATE', ['on', 'off'] as const) === 'on';
  if (database !== null) database.migrate = migrate;
  const databasePath = get('DATABASE_PATH').trim();
  if (database === null && databasePath === '') errors.push('DATABASE_PATH must not be empty when DATABASE_DSN is unset');
  const redisAddress = get('REDIS_ADDRESS').trim();
  const rabbitmqAddress = get('RABBITMQ_ADDRESS').trim();
  if (rabbitmqAddress !== '' && !/^amqps?:\/\//.test(rabbitmqAddress)) {
    errors.push('RABBITMQ_ADDRESS must be an amqp:// or amqps:// URL');
  }
  const endpoint = get('PROMETHEUS_ENDPOINT').trim();
  if (!endpoint.startsWith('/')) errors.push('PROMETHEUS_ENDPOINT must start with /');
  const onOff = (name: string): boolean => {
    const v = get(name).trim().toLowerCase();
    if (['on', 'true', '1', 'yes'].includes(v)) return true;
    if (['off', 'false', '0', 'no', ''].includes(v)) return false;
    errors.push(`${name} must be on or off, got ${JSON.stringify(v)}`);
    return false;
  };
  const url = (name: string): string => {
    const v = get(name).trim();
    if (v !== '' && !/^(https?|wss?):\/\//.test(v)) errors.push(`${name} must be an http(s):// URL`);
    return v.replace(/\/+$/, '');
  };

  const list = (name: string): string[] =>
    get(name)
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '');
  const origins = (name: string): string[] =>
    list(name).map((o) => {
      try {
        const u = new URL(o);
        if ((u.protocol === 'http:' || u.protocol === 'https:') && u.origin === o.replace(/\/+$/, '').toLowerCase()) return u.origin;
      } catch {
        // reported below
      }
      errors.push(`${name}: ${JSON.stringify(o)} is not an origin like https://ops.example.com (scheme, host, optional port)`);
      return '';
    });

  const config: Config = {
    podIp,
    audiosocketListen: hostPort('AUDIOSOCKET_LISTEN_ADDRESS', audiosocketText, podIp),
    httpListen: hostPort('HTTP_LISTEN_ADDRESS', get('HTTP_LISTEN_ADDRESS'), '127.0.0.1'),
    httpAuthToken: get('HTTP_AUTH_TOKEN'),
    prometheusListen: hostPort('PROMETHEUS_LISTEN_ADDRESS', get('PROMETHEUS_LISTEN_ADDRESS'), '0.0.0.0'),
    prometheusEndpoint: endpoint,
    database,
    databasePath: databasePath === '' ? '' : resolve(databasePath),
    redis:
      redisAddress === ''
        ? null
        : {
            ...hostPort('REDIS_ADDRESS', redisAddress, '127.0.0.1'),
            password: get('REDIS_PASSWORD'),
            database: int('REDIS_DATABASE', 0, 255),
          },
    rabbitmqAddress,
    eventsWebhookUrl: webhookUrl(get('EVENTS_WEBHOOK_URL'), errors),
    unknownCalls: oneOf('UNKNOWN_CALLS', ['accept', 'reject'] as const),
    callManager: onOff('CALL_MANAGER'),
    defaults: {
      llmType: get('DEFAULT_LLM_TYPE').trim(),
      sttType: get('DEFAULT_STT_TYPE').trim(),
      ttsType: get('DEFAULT_TTS_TYPE').trim(),
      ttsVoiceId: get('DEFAULT_TTS_VOICE_ID').trim(),
      systemPrompt: get('DEFAULT_SYSTEM_PROMPT'),
    },
    keys: {
      openai: get('OPENAI_API_KEY').trim(),
      xai: get('XAI_API_KEY').trim(),
      deepgram: get('DEEPGRAM_API_KEY').trim(),
      cartesia: get('CARTESIA_API_KEY').trim(),
      elevenlabs: get('ELEVENLABS_API_KEY').trim(),
      anthropic: get('ANTHROPIC_API_KEY').trim(),
      gemini: get('GEMINI_API_KEY').trim(),
      groq: get('GROQ_API_KEY').trim(),
      openrouter: get('OPENROUTER_API_KEY').trim(),
      deepseek: get('DEEPSEEK_API_KEY').trim(),
      mistral: get('MISTRAL_API_KEY').trim(),
      cerebras: get('CEREBRAS_API_KEY').trim(),
      fireworks: get('FIREWORKS_API_KEY').trim(),
      perplexity: get('PERPLEXITY_API_KEY').trim(),
      together: get('TOGETHER_API_KEY').trim(),
      sambanova: get('SAMBANOVA_API_KEY').trim(),
      nvidia: get('NVIDIA_API_KEY').trim(),
      qwen: get('QWEN_API_KEY').trim(),
    },
    elevenlabsBaseUrl: url('ELEVENLABS_BASE_URL'),
    anthropicBaseUrl: url('ANTHROPIC_BASE_URL'),
    geminiBaseUrl: url('GEMINI_BASE_URL'),
    openaiBaseUrl: url('OPENAI_BASE_URL'),
    deepgramBaseUrl: url('DEEPGRAM_BASE_URL'),
    cartesiaBaseUrl: url('CARTESIA_BASE_URL'),
    sphinxJsgf: get('SPHINX_JSGF').trim(),
    resamplerQuality: oneOf('RESAMPLER_QUALITY', ['sinc_fastest', 'sinc_medium', 'sinc_best'] as const),
    idleTimeoutSeconds: int('IDLE_TIMEOUT_SECONDS', 1, 86_400),
    mediaConnectTimeoutSeconds: int('MEDIA_CONNECT_TIMEOUT_SECONDS', 1, 86_400),
    audiosocketDtmf: oneOf('AUDIOSOCKET_DTMF', ['turn', 'ignore'] as const),
    shutdownGraceSeconds: int('SHUTDOWN_GRACE_SECONDS', 0, 3_600),
    audiosocketHandshakeTimeoutMs: int('AUDIOSOCKET_HANDSHAKE_TIMEOUT_MS', 100, 600_000),
    audiosocketMaxFrameBytes: int('AUDIOSOCKET_MAX_FRAME_BYTES', 320, 65_535),
    logLevel: oneOf('LOG_LEVEL', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const),
    turns: {
      falseInterruptionSecs: secs('TURN_FALSE_INTERRUPTION_SECS', 0, 10),
      minStopSecs: secs('TURN_MIN_STOP_SECS', 0, 10),
      maxStopSecs: secs('TURN_MAX_STOP_SECS', 0, 10),
      preemptive: onOff('TURN_PREEMPTIVE_GENERATION'),
    },
    httpAllowedHosts: list('HTTP_ALLOWED_HOSTS').map((h) => h.toLowerCase()),
    httpAllowedOrigins: origins('HTTP_ALLOWED_ORIGINS'),
    sigusr1Inspector: onOff('SIGUSR1_INSPECTOR'),
    databaseQueryTimeoutMs: int('DATABASE_QUERY_TIMEOUT_MS', 100, 600_000),
    limits: {
      rpcRequestBytes: int('RPC_MAX_REQUEST_BYTES', 4_096, 64 * 1024 * 1024),
      llmMessagesBytes: int('LLM_MESSAGES_MAX_BYTES', 1_024, 16 * 1024 * 1024),
      llmMessagesDepth: int('LLM_MESSAGES_MAX_DEPTH', 3, 64),
      messageTextChars: int('MESSAGE_TEXT_MAX_CHARS', 1, 16 * 1024 * 1024),
    },
    maxConnections: {
      audiosocket: int('AUDIOSOCKET_MAX_CONNECTIONS', 0, 1_000_000),
      http: int('HTTP_MAX_CONNECTIONS', 0, 1_000_000),
      websocket: int('WEBSOCKET_MAX_CONNECTIONS', 0, 1_000_000),
    },
    maxCalls: int('MAX_CALLS', 0, 1_000_000),
    dspWorkers: get('DSP_WORKERS').trim() === '' ? null : int('DSP_WORKERS', 0, 64),
    admissionControl: onOff('ADMISSION_CONTROL'),
  };
  // call-manager is only reachable over RabbitMQ: a production setting must never run half-embedded.
  if (config.callManager && rabbitmqAddress === '') {
    errors.push('CALL_MANAGER=on needs RABBITMQ_ADDRESS (call-manager is reached over RabbitMQ)');
  }
  // An unknown Audiosocket call is created with the defaults; without an LLM every such call would fail.
  if (config.unknownCalls === 'accept' && config.defaults.llmType === '') {
    errors.push('UNKNOWN_CALLS=accept needs a DEFAULT_LLM_TYPE (or set UNKNOWN_CALLS=reject)');
  }
  if (errors.length > 0) throw new ConfigError(`invalid configuration: ${errors.join('; ')}`);
  return deepFreeze(config);
}

/** EVENTS_WEBHOOK_URL: kept exactly as given (a trailing slash may matter to the receiver). */
function webhookUrl(text: string, errors: string[]): string {
  const v = text.trim();
  if (v === '') return '';
  let u: URL | null = null;
  try {
    u = new URL(v);
  } catch {
    // reported below
  }
  if (u === null || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
    errors.push('EVENTS_WEBHOOK_URL must be an http(s):// URL');
    return '';
  }
  return v;
}

/** `host:port`, `:port` (all interfaces → defaultHost) or `[v6]:port`. */
export function parseHostPort(text: string, defaultHost: string): HostPort {
  const t = text.trim();
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(t);
  if (m === null) throw new Error(`expected host:port, got ${JSON.stringify(t)}`);
  const port = Number(m[3]);
  if (port > 65_535) throw new Error(`port out of range in ${JSON.stringify(t)}`);
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? defaultHost : m[2]);
  return { host, port };
}

/** `mysql://user:pass@host:port/db` or Go's `user:pass@tcp(host:port)/db?params`. */
export function parseDatabaseDsn(dsn: string): DatabaseConfig {
  const t = dsn.trim();
  if (/^mysql:\/\//i.test(t) || /^mariadb:\/\//i.test(t)) {
    let u: URL;
    try {
      u = new URL(t);
    } catch {
      throw new Error('not a valid mysql:// URL');
    }
    const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
    if (database === '') throw new Error('the DSN names no database (…/pipecat)');
    return {
      host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
      port: u.port === '' ? 3306 : Number(u.port),
      user: decodeURIComponent(u.username) || 'root',
      password: decodeURIComponent(u.password),
      database,
    };
  }
  const m = /^(?:([^:@]*)(?::(.*))?@)?tcp\(([^)]*)\)\/([^?]+)(?:\?.*)?$/.exec(t);
  if (m === null) throw new Error('expected mysql://user:pass@host:port/db or user:pass@tcp(host:port)/db');
  const hp = parseHostPort((m[3] ?? '').includes(':') ? (m[3] ?? '') : `${m[3] ?? ''}:3306`, '127.0.0.1');
  return { host: hp.host, port: hp.port, user: m[1] || 'root', password: m[2] ?? '', database: m[4] ?? '' };
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
