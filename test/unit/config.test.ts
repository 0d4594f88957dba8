import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONFIG_VARIABLES, loadConfig, parseConfigFlags, parseDatabaseDsn, parseHostPort } from '../../src/config.js';
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
    expect(c.database).toEqual({ host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'pipecat' });
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
      flags: parseConfigFlags(['--log-level', 'error']),
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

  it('rejects unknown flags and flags without values', () => {
    expect(() => parseConfigFlags(['--no-such-thing', '1'])).toThrow(/unknown flag --no-such-thing/);
    expect(() => parseConfigFlags(['--pod-ip'])).toThrow(/needs a value/);
    expect(parseConfigFlags(['--pod-ip=1.2.3.4'])).toEqual({ POD_IP: '1.2.3.4' });
  });

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
