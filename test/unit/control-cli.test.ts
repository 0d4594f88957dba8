// pipecat-control's command line in-process (runControl, what the program runs): every usage error is exit 2
// with one JSON line naming the option, before any connection to RabbitMQ is attempted (no services needed:
// the configured broker address is a closed port, so a request would fail with exit 1, not 2).

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { runControl, type ControlOutcome } from '../../src/cmd/control-run.js';

const EMPTY_DIR = mkdtempSync(join(tmpdir(), 'control-cli-'));
const ENV = { RABBITMQ_ADDRESS: 'amqp://guest:guest@127.0.0.1:1' };
const ID = randomUUID();

const run = (...argv: string[]): Promise<ControlOutcome> => runControl(argv, ENV, EMPTY_DIR);

async function usageError(...argv: string[]): Promise<string> {
  const r = await run(...argv);
  expect(r.code, `${argv.join(' ')} → ${r.stderr}`).toBe(2);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  const parsed = JSON.parse(lines[0] ?? '') as { error: unknown };
  expect(Object.keys(parsed)).toEqual(['error']);
  return String(parsed.error);
}

describe('pipecat-control usage errors', () => {
  it('an unknown option is named, with the closest known one', async () => {
    const m = await usageError('pipecatcall', 'get', '--idd', ID);
    expect(m).toMatch(/^unknown option '--idd' \(Did you mean --id\?\)/);
    expect(m).toMatch(/see pipecat-control pipecatcall get --help/);
    expect(await usageError('call', 'dial', '--wavv', 'x.wav')).toMatch(/unknown option '--wavv'/);
  });

  it('a missing value never swallows the next option', async () => {
    expect(await usageError('pipecatcall', 'get', '--id', '--host-id', 'h')).toMatch(
      /option '--id <uuid>' argument '--host-id' is invalid\. the value is missing \(--host-id is an option\)/,
    );
    expect(await usageError('pipecatcall', 'list', '--host-id', '--rabbitmq-address', 'amqp://x')).toMatch(/'--host-id <host>' argument missing/);
    expect(await usageError('ping', '--host-id')).toMatch(/option '--host-id <host>' argument missing/);
  });

  it('an option given twice is ambiguous', async () => {
    expect(await usageError('pipecatcall', 'get', '--id', ID, '--id', randomUUID())).toMatch(/'--id <uuid>'.*more than once/);
  });

  it('required options, checked after unknown ones', async () => {
    expect(await usageError('pipecatcall', 'get')).toMatch(/required option '--id <uuid>' not specified/);
    expect(await usageError('pipecatcall', 'terminate')).toMatch(/required option '--id <uuid>'/);
    expect(await usageError('pipecatcall', 'send-message', '--id', ID)).toMatch(/required option '--message-text <text>'/);
    expect(await usageError('call', 'dial')).toMatch(/required option '--wav <file>'/);
  });

  it('malformed values name their option', async () => {
    expect(await usageError('pipecatcall', 'get', '--id', 'not-a-uuid')).toMatch(/'--id <uuid>' argument 'not-a-uuid' is invalid\. not a valid UUID/);
    expect(await usageError('pipecatcall', 'start', '--customer-id', '42')).toMatch(/--customer-id.*not a valid UUID/);
    expect(await usageError('pipecatcall', 'send-message', '--id', ID, '--message-text', 'x', '--message-id', 'm1')).toMatch(/--message-id.*not a valid UUID/);
    expect(await usageError('pipecatcall', 'start', '--reference-type', 'chat')).toMatch(/--reference-type.*must be call or ai_call/);
    expect(await usageError('pipecatcall', 'start', '--llm-messages', '{"role":"user"}')).toMatch(/--llm-messages must be a JSON array/);
    expect(await usageError('pipecatcall', 'start', '--llm-messages', '@/nonexistent/messages.json')).toMatch(/--llm-messages.*ENOENT/);
    expect(await usageError('pipecatcall', 'send-message', '--id', ID, '--message-text', 'x', '--run-immediately', 'maybe')).toMatch(
      /--run-immediately.*true or false/,
    );
    expect(await usageError('call', 'dial', '--wav', '/nonexistent.wav')).toMatch(/--wav \/nonexistent\.wav/);
    expect(await usageError('ping', '--http', 'ftp://daemon')).toMatch(/'--http <url>' argument 'ftp:\/\/daemon' is invalid\. must be an http\(s\):\/\/ URL/);
  });

  it('commands: unknown, missing, or with stray arguments', async () => {
    expect(await usageError('frobnicate')).toMatch(/unknown command 'frobnicate'/);
    expect(await usageError()).toMatch(/^pipecat-control: a command is needed: pipecatcall, ping, call/);
    expect(await usageError('pipecatcall')).toMatch(/^pipecat-control pipecatcall: a command is needed: get, list, start, terminate, send-message/);
    expect(await usageError('pipecatcall', 'stop', '--id', ID)).toMatch(/unknown command 'stop'/);
    expect(await usageError('ping', 'extra')).toMatch(/too many arguments for 'ping'/);
  });

  it('configuration flags are validated like the daemon’s, and secrets never echoed', async () => {
    expect(await usageError('ping', '--log-level', 'loud')).toMatch(/LOG_LEVEL must be one of/);
    const m = await usageError('ping', '--database-dsn', 'postgres://u:hunter2@h/db');
    expect(m).toMatch(/DATABASE_DSN/);
    expect(m).not.toContain('hunter2');
  });
});

describe('pipecat-control help', () => {
  it('is generated for the program and each command, on stdout, exit 0', async () => {
    const top = await run('--help');
    expect(top.code).toBe(0);
    expect(top.stderr).toBe('');
    expect(top.stdout).toMatch(/^Usage: pipecat-control \[options\] \[command\]/);
    expect(top.stdout).toContain('--rabbitmq-address <value>');
    const start = await run('pipecatcall', 'start', '--help');
    const flags = ['--id', '--customer-id', '--activeflow-id', '--reference-type', '--reference-id', '--llm-type', '--llm-messages', '--system-prompt', '--stt-type', '--stt-language', '--tts-type', '--tts-language', '--tts-voice-id'];
    for (const flag of flags) expect(start.stdout).toContain(`${flag} <`);
    const dial = await run('help', 'call');
    expect(dial.code).toBe(0);
    expect(dial.stdout).toContain('dial [options]');
  });
});

describe('pipecat-control options that take an optional value', () => {
  it('--run-immediately alone is true and does not take the next option as its value', async () => {
    // Past the option parsing the request is attempted: the closed broker port makes it exit 1, not 2.
    const r = await run('pipecatcall', 'send-message', '--id', ID, '--run-immediately', '--audio-response', 'false', '--message-text', 'x');
    expect(r.code, r.stderr).toBe(1);
  }, 20_000);
});

describe('pipecat-control failures that are not usage errors', () => {
  it('an unreachable broker is exit 1 with a JSON error', async () => {
    const r = await run('ping');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(String((JSON.parse(r.stderr) as { error: unknown }).error)).toMatch(/127\.0\.0\.1:1|ECONNREFUSED|RabbitMQ/i);
  }, 20_000);
});
