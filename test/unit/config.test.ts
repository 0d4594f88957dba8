import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HelpShown } from '../../src/cmd/commander-errors.js';
import { parseManagerArgs } from '../../src/cmd/manager-cli.js';
import { UsageError } from '../../src/cmd/usage-error.js';
import { parseCreateRequest } from '../../src/calls/create-request.js';
import { statusOf } from '../../src/errors.js';
import { CONFIG_VARIABLES, flagName, loadConfig, parseDatabaseDsn, parseHostPort } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

describe('loadConfig', () => {
  it('has working local defaults', () => {
    const c = loadConfig({ env: {} });
    expect(c.podIp).toBe('127.0.0.1');
    expect(c.audiosocketListen).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(c.httpListen).toEqual({ host: '127.0.0.1', port: 8001 });
    expect(c.prometheusListen).toEqual({ host: '127.0.0.1', port: 2112 });
    expect(c.prometheusEndpoint).toBe('/metrics');
    // No service configured: the embedded parts (SQLite file, no cache, no broker).
    expect(c.database).toBeNull();
    expect(c.databasePath).toBe(join(process.cwd(), 'data/pipecat-manager.sqlite'));
    expect(c.redis).toBeNull();
    expect(c.rabbitmqAddress).toBe('');
    expect(c.eventsWebhookUrl).toBe('');
    expect(c.unknownCalls).toBe('accept');
    expect(c.callManager).toBe(false);
    expect(c.defaults).toMatchObject({ llmType: 'local.echo', sttType: 'sphinx', ttsType: 'espeak' });
    expect(c.idleTimeoutSeconds).toBe(300);
    expect(c.shutdownGraceSeconds).toBe(30);
    expect(c.audiosocketHandshakeTimeoutMs).toBe(5000);
    expect(c.audiosocketMaxFrameBytes).toBe(16384);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('switches each part to its real service when its address is configured', () => {
    const c = loadConfig({
      env: {
        DATABASE_DSN: 'mysql://root@127.0.0.1:3306/pipecat',
        REDIS_ADDRESS: '127.0.0.1:6379',
        RABBITMQ_ADDRESS: 'amqp://guest:guest@127.0.0.1:5672',
      },
    });
    expect(c.database).toEqual({ host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'pipecat', migrate: true });
    expect(Object.isFrozen(c.database)).toBe(true);
    expect(c.redis).toEqual({ host: '127.0.0.1', port: 6379, password: '', database: 1 });
    expect(c.rabbitmqAddress).toBe('amqp://guest:guest@127.0.0.1:5672');
    expect(loadConfig({ env: { REDIS_ADDRESS: 'cache:6380' } })).toMatchObject({
      database: null,
      redis: { host: 'cache', port: 6380 },
      rabbitmqAddress: '',
    });
  });

  it('refuses CALL_MANAGER=on without a broker, and a bad webhook URL', () => {
    expect(() => loadConfig({ env: { CALL_MANAGER: 'on' } })).toThrow(/CALL_MANAGER=on needs RABBITMQ_ADDRESS/);
    expect(loadConfig({ env: { CALL_MANAGER: 'on', RABBITMQ_ADDRESS: 'amqp://h' } }).callManager).toBe(true);
    expect(() => loadConfig({ env: { EVENTS_WEBHOOK_URL: 'ftp://x/hook' } })).toThrow(/EVENTS_WEBHOOK_URL must be an http/);
    expect(loadConfig({ env: { EVENTS_WEBHOOK_URL: 'http://127.0.0.1:9/hook/' } }).eventsWebhookUrl).toBe(
      'http://127.0.0.1:9/hook/',
    );
  });

  it('derives the Audiosocket address from POD_IP', () => {
    expect(loadConfig({ env: { POD_IP: '10.0.0.5' } }).audiosocketListen).toEqual({ host: '10.0.0.5', port: 8080 });
  });

  it('flags override env, env overrides .env', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, '.env'), 'POD_IP=10.1.1.1\nREDIS_DATABASE=4\nLOG_LEVEL=debug\n');
    const c = loadConfig({
      dotenvDir: dir,
      env: { REDIS_ADDRESS: '127.0.0.1:6379', REDIS_DATABASE: '5', LOG_LEVEL: 'warn' },
      flags: parseManagerArgs(['--log-level', 'error']),
    });
    expect(c.podIp).toBe('10.1.1.1');
    expect(c.redis?.database).toBe(5);
    expect(c.logLevel).toBe('error');
  });

  it('collects every invalid value in one clear error', () => {
    let err: unknown;
    try {
      loadConfig({ env: { IDLE_TIMEOUT_SECONDS: 'soon', UNKNOWN_CALLS: 'maybe', RABBITMQ_ADDRESS: 'http://x' } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const m = (err as Error).message;
    expect(m).toMatch(/IDLE_TIMEOUT_SECONDS must be an integer/);
    expect(m).toMatch(/UNKNOWN_CALLS must be one of accept, reject/);
    expect(m).toMatch(/RABBITMQ_ADDRESS must be an amqp/);
  });

  it('refuses a setting name it does not know', () => {
    expect(() => loadConfig({ env: {}, flags: { NO_SUCH_THING: '1' } })).toThrow(/unknown setting NO_SUCH_THING/);
  });

  it('DATABASE_MIGRATE is on or off', () => {
    const dsn = 'mysql://u@db:3306/calls';
    expect(loadConfig({ env: { DATABASE_DSN: dsn } }).database?.migrate).toBe(true);
    expect(loadConfig({ env: { DATABASE_DSN: dsn, DATABASE_MIGRATE: 'off' } }).database?.migrate).toBe(false);
    expect(loadConfig({ env: { DATABASE_DSN: dsn, DATABASE_MIGRATE: 'ON' } }).database?.migrate).toBe(true);
    expect(() => loadConfig({ env: { DATABASE_MIGRATE: 'sometimes' } })).toThrow(/DATABASE_MIGRATE must be one of on, off/);
  });

  it('an empty DEFAULT_LLM_TYPE is kept empty, and refused when unknown calls would need it', () => {
    const c = loadConfig({ env: { DEFAULT_LLM_TYPE: '', UNKNOWN_CALLS: 'reject' } });
    expect(c.defaults.llmType).toBe('');
    expect(() => loadConfig({ env: { DEFAULT_LLM_TYPE: '' } })).toThrow(/UNKNOWN_CALLS=accept needs a DEFAULT_LLM_TYPE/);
  });
});

/** The variables the Dockerfile's ENV instruction sets (its `NAME=value \\` continuation lines). */
function dockerfileEnv(): Record<string, string> {
  const text = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
  const block = /^ENV ((?:.*\\\n)*.*)$/m.exec(text)?.[1] ?? '';
  const env: Record<string, string> = {};
  for (const m of block.matchAll(/([A-Z_]+)=(\S*)/g)) env[m[1] ?? ''] = m[2] ?? '';
  return env;
}

describe('the production image (Dockerfile) and the local defaults', () => {
  it('the image configures no echo bot: a create without llm_type is a 400 naming DEFAULT_LLM_TYPE', () => {
    const env = dockerfileEnv();
    expect(env).toMatchObject({ DEFAULT_LLM_TYPE: '', UNKNOWN_CALLS: 'reject', CALL_MANAGER: 'on' });
    const c = loadConfig({ env });
    expect(c.defaults.llmType).toBe('');
    let err: unknown;
    try {
      parseCreateRequest({ reference_type: 'call' }, c.defaults.llmType);
    } catch (e) {
      err = e;
    }
    expect(statusOf(err)).toBe(400);
    expect((err as Error).message).toBe('llm_type is required: this instance has no DEFAULT_LLM_TYPE');
    // A create that names its LLM is unaffected.
    expect(parseCreateRequest({ reference_type: 'call', llm_type: 'openai.gpt-4o-mini' }, c.defaults.llmType).llm_type).toBe('openai.gpt-4o-mini');
  });

  it('locally (no variables) a create without llm_type gets local.echo (SPEC §11)', () => {
    expect(parseCreateRequest({ reference_type: 'call' }, loadConfig({ env: {} }).defaults.llmType).llm_type).toBe('local.echo');
  });
});

describe('the daemon command line (commander)', () => {
  it('gives every variable a kebab-case flag, by variable name for loadConfig', () => {
    for (const [name] of CONFIG_VARIABLES) {
      expect(parseManagerArgs([`--${flagName(name)}`, 'x']), name).toEqual({ [name]: 'x' });
    }
    expect(parseManagerArgs(['--pod-ip=1.2.3.4', '--database-migrate', 'off'])).toEqual({ POD_IP: '1.2.3.4', DATABASE_MIGRATE: 'off' });
    expect(parseManagerArgs([])).toEqual({});
  });

  const usageError = (argv: string[]): string => {
    try {
      parseManagerArgs(argv);
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      return (err as Error).message;
    }
    throw new Error(`${argv.join(' ')} was accepted`);
  };

  it('refuses unknown flags, missing values, repeated flags and stray arguments, naming the flag', () => {
    expect(usageError(['--no-such-thing', '1'])).toMatch(/unknown option '--no-such-thing'/);
    expect(usageError(['--log-levl', 'debug'])).toMatch(/unknown option '--log-levl'.*--log-level/);
    expect(usageError(['--pod-ip'])).toMatch(/'--pod-ip <value>' argument missing/);
    // A missing value never swallows the next flag.
    expect(usageError(['--pod-ip', '--log-level', 'debug'])).toMatch(/'--pod-ip <value>'.*value is missing/);
    expect(usageError(['--pod-ip', 'a', '--pod-ip', 'b'])).toMatch(/--pod-ip.*more than once/);
    expect(usageError(['serve'])).toMatch(/too many arguments/);
  });

  it('--help is not an error', () => {
    const write = process.stdout.write.bind(process.stdout);
    let out = '';
    process.stdout.write = ((chunk: string) => {
      out += chunk;
      return true;
    });
    try {
      expect(() => parseManagerArgs(['--help'])).toThrow(HelpShown);
    } finally {
      process.stdout.write = write;
    }
    for (const [name] of CONFIG_VARIABLES) expect(out, name).toContain(`--${flagName(name)} <value>`);
  });
});

describe('DSNs and addresses', () => {
  it('accepts the Go DSN form and never echoes a password in errors', () => {
    expect(parseDatabaseDsn('user:secret@tcp(db.local:3307)/calls?parseTime=true')).toEqual({
      host: 'db.local',
      port: 3307,
      user: 'user',
      password: 'secret',
      database: 'calls',
    });
    expect(parseDatabaseDsn('mysql://a:b%40c@h/d')).toMatchObject({ user: 'a', password: 'b@c', port: 3306 });
    expect(() => loadConfig({ env: { DATABASE_DSN: 'postgres://u:topsecret@h/db' } })).toThrow(ConfigError);
    try {
      loadConfig({ env: { DATABASE_DSN: 'postgres://u:topsecret@h/db' } });
    } catch (e) {
      expect((e as Error).message).not.toContain('topsecret');
    }
  });

  it('parses host:port forms', () => {
    expect(parseHostPort(':2112', '0.0.0.0')).toEqual({ host: '0.0.0.0', port: 2112 });
    expect(parseHostPort('[::1]:80', 'x')).toEqual({ host: '::1', port: 80 });
    expect(() => parseHostPort('nohost', 'x')).toThrow(/host:port/);
    expect(() => parseHostPort('h:70000', 'x')).toThrow(/range/);
  });

  it('every variable is in .env.example and the README', () => {
    const example = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const [name] of CONFIG_VARIABLES) {
      expect(example, name).toContain(`${name}=`);
      expect(readme, name).toContain(`\`${name}\``);
    }
  });
});
