// The daemon's configuration (SPEC §11): environment, an optional .env file and kebab-case flags, validated once
// into one frozen object. Nothing else in src/ reads process.env.

import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { ConfigError } from './errors.js';

export type ResamplerQuality = 'sinc_fastest' | 'sinc_medium' | 'sinc_best';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

// Declared with their parsers (config-addresses.ts), so that module needs nothing from this one.
import type { DatabaseConfig, HostPort } from './config-addresses.js';
export type { DatabaseConfig, HostPort };

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
  /** 0: frames are written from the main thread's clock; otherwise the pacing thread's lead. */
  audiosocketPacerLeadMs: number;
  audiosocketPacerNice: number;
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
  /** Nice value of the DSP worker threads (0: as the process). */
  dspWorkerNice: number;
  /** Caller audio per STT message (ms). */
  sttChunkMs: number;
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

import { parseDatabaseDsn, parseHostPort } from './config-addresses.js';
import { CONFIG_VARIABLES } from './config-variables.js';

export { CONFIG_VARIABLES, parseDatabaseDsn, parseHostPort };

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
    if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
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
    audiosocketPacerLeadMs: int('AUDIOSOCKET_PACER_LEAD_MS', 0, 320),
    audiosocketPacerNice: int('AUDIOSOCKET_PACER_NICE', -20, 19),
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
    dspWorkerNice: int('DSP_WORKER_NICE', 0, 19),
    sttChunkMs: int('STT_CHUNK_MS', 0, 1000),
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

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
