// pipecat-control's command line (SPEC §10) on commander: each subcommand declares its options, so help is
// generated and a typo, a repeated option or a missing value is a usage error naming the option.

import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig, type Config } from '../config.js';
import { messageOf } from '../errors.js';
import { newUuid, parseUuid } from '../model/uuid.js';
import { SHARED_QUEUE, perHostQueue } from '../rpc/topology.js';
import { throwOnUsageErrors } from './commander-errors.js';
import { ControlSession } from './control-session.js';
import { dialCall } from './dial.js';
import { addConfigOptions, valueOption } from './options.js';
import { UsageError } from './usage-error.js';

function uuid(value: string): string {
  const id = parseUuid(value);
  if (id === null) throw new InvalidArgumentError('not a valid UUID.');
  return id;
}

function bool(value: string): boolean {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new InvalidArgumentError('takes true or false (or nothing, meaning true).');
}

function httpUrl(value: string): string {
  let u: URL | null = null;
  try {
    u = new URL(value);
  } catch {
    // refused below
  }
  if (u === null || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw new InvalidArgumentError('must be an http(s):// URL.');
  return value;
}

function referenceType(value: string): string {
  if (value !== 'call' && value !== 'ai_call') throw new InvalidArgumentError('must be call or ai_call.');
  return value;
}

const idOption = (required: boolean): ReturnType<typeof valueOption> =>
  valueOption('--id <uuid>', required ? 'the pipecatcall id (required)' : 'the pipecatcall id (default: a new UUID)', uuid);
const hostOption = (): ReturnType<typeof valueOption> => valueOption('--host-id <host>', 'the instance (its POD_IP; default: this POD_IP)');

interface StartOptions {
  id?: string;
  customerId?: string;
  activeflowId?: string;
  referenceType?: string;
  referenceId?: string;
  llmType?: string;
  llmMessages?: string;
  systemPrompt?: string;
  sttType?: string;
  sttLanguage?: string;
  ttsType?: string;
  ttsLanguage?: string;
  ttsVoiceId?: string;
}

/** The create body (SPEC §5.1) from `pipecatcall start`'s options. */
export function startBody(o: StartOptions): Record<string, unknown> {
  let messages: unknown[] = [];
  if (o.llmMessages !== undefined) {
    try {
      const text = o.llmMessages.startsWith('@') ? readFileSync(o.llmMessages.slice(1), 'utf8') : o.llmMessages;
      const parsed: unknown = JSON.parse(text);
      if (!Array.isArray(parsed)) throw new Error('not an array');
      messages = parsed;
    } catch (err) {
      throw new UsageError(`--llm-messages must be a JSON array of chat messages, or @FILE holding one (${messageOf(err)})`);
    }
  }
  if (o.systemPrompt !== undefined) messages = [{ role: 'system', content: o.systemPrompt }, ...messages];
  const body: Record<string, unknown> = { id: o.id ?? newUuid(), reference_type: o.referenceType ?? 'call' };
  const optional: Array<[string, string | undefined]> = [
    ['customer_id', o.customerId],
    ['activeflow_id', o.activeflowId],
    ['reference_id', o.referenceId],
    ['llm_type', o.llmType],
    ['stt_type', o.sttType],
    ['stt_language', o.sttLanguage],
    ['tts_type', o.ttsType],
    ['tts_language', o.ttsLanguage],
    ['tts_voice_id', o.ttsVoiceId],
  ];
  for (const [key, value] of optional) if (value !== undefined) body[key] = value;
  if (messages.length > 0) body.llm_messages = messages;
  return body;
}

export interface ControlProgram {
  program: Command;
  /** The result of the command that ran (printed as JSON), once parseAsync resolved. */
  result(): unknown;
  /** What --help printed (commander writes help itself; it is captured so that the caller decides where it goes). */
  helpOutput(): string;
  /** The deepest command reached, for a "which subcommand?" error. */
  reached(): Command;
  close(): Promise<void>;
}

/** Builds the program. `env`/`dotenvDir` feed loadConfig together with the configuration flags. */
export function buildControlProgram(env: NodeJS.ProcessEnv, dotenvDir: string): ControlProgram {
  let result: unknown;
  let help = '';
  let session: ControlSession | null = null;
  const program = throwOnUsageErrors(new Command('pipecat-control'))
    .description('Operator CLI for pipecat-manager: results as JSON on stdout, errors as {"error":"…"} on stderr')
    // The help commander prints when a command is missing would not be JSON; main's error says it instead.
    .configureOutput({
      writeOut: (text) => {
        help += text;
      },
      writeErr: () => undefined,
      outputError: () => undefined,
    })
    .addHelpText('after', '\nExit codes: 0 success, 1 failure, 2 usage error. Run `pipecat-control <command> --help` for its options.');
  let reached: Command = program;
  const track = (group: Command): Command =>
    group.hook('preSubcommand', (_cmd, sub) => {
      reached = sub;
    });
  track(program);
  program.addOption(
    valueOption('--http <url>', "send the requests over HTTP to this daemon (default: RabbitMQ, or HTTP to HTTP_LISTEN_ADDRESS when RABBITMQ_ADDRESS is unset)", httpUrl),
  );
  const configFlags = addConfigOptions(program);
  const open = (): ControlSession => {
    const config: Config = loadConfig({ env, flags: configFlags(), dotenvDir });
    session = new ControlSession(config, program.opts<{ http?: string }>().http);
    return session;
  };
  // Required options are checked here rather than with commander's makeOptionMandatory, which reports a missing
  // --id before an unknown --idd: the typo is what the operator needs to see.
  const run =
    <O extends object>(work: (s: ControlSession, options: O) => Promise<unknown>, ...required: Array<keyof O & string>) =>
    async (options: O, cmd: Command): Promise<void> => {
      for (const key of required) {
        if ((options as Record<string, unknown>)[key] === undefined) {
          const flags = cmd.options.find((o) => o.attributeName() === key)?.flags ?? key;
          throw new UsageError(`required option '${flags}' not specified`);
        }
      }
      result = await work(open(), options);
    };

  const calls = track(program.command('pipecatcall')).description('create, read, list and end pipecatcalls; send them messages');
  calls
    .command('get')
    .description('GET the call (shared queue)')
    .addOption(idOption(true))
    .action(run<{ id: string }>((s, o) => s.request(SHARED_QUEUE, `/v1/pipecatcalls/${o.id}`, 'GET'), 'id'));
  calls
    .command('list')
    .description('the calls with a live session on a host')
    .addOption(hostOption())
    .action(
      run<{ hostId?: string }>((s, o) =>
        s.request(SHARED_QUEUE, `/v1/pipecatcalls?host_id=${encodeURIComponent(o.hostId ?? s.config.podIp)}`, 'GET'),
      ),
    );
  calls
    .command('start')
    .description('create a call (POST /v1/pipecatcalls)')
    .addOption(idOption(false))
    .addOption(valueOption('--customer-id <uuid>', 'customer', uuid))
    .addOption(valueOption('--activeflow-id <uuid>', 'activeflow', uuid))
    .addOption(valueOption('--reference-type <type>', 'call or ai_call (default call)', referenceType))
    .addOption(valueOption('--reference-id <uuid>', 'the call or aicall it belongs to', uuid))
    .addOption(valueOption('--llm-type <type>', 'vendor.model, e.g. openai.gpt-4o-mini (default: DEFAULT_LLM_TYPE)'))
    .addOption(valueOption('--llm-messages <json>', 'initial chat messages: a JSON array, or @FILE'))
    .addOption(valueOption('--system-prompt <text>', 'prepended as a system message'))
    .addOption(valueOption('--stt-type <type>', 'speech-to-text provider (default: none)'))
    .addOption(valueOption('--stt-language <lang>', 'STT language, e.g. en-US'))
    .addOption(valueOption('--tts-type <type>', 'text-to-speech provider (default: none)'))
    .addOption(valueOption('--tts-language <lang>', 'TTS language'))
    .addOption(valueOption('--tts-voice-id <voice>', 'TTS voice'))
    .action(run<StartOptions>((s, o) => s.request(SHARED_QUEUE, '/v1/pipecatcalls', 'POST', startBody(o))));
  calls
    .command('terminate')
    .description("end the call (POST …/stop on its owner's queue)")
    .addOption(idOption(true))
    .action(
      run<{ id: string }>(async (s, o) => s.request(await s.ownerQueue(o.id), `/v1/pipecatcalls/${o.id}/stop`, 'POST'), 'id'),
    );
  calls
    .command('send-message')
    .description("send a text message into the call (POST /v1/messages on its owner's queue)")
    .addOption(idOption(true))
    .addOption(valueOption('--message-text <text>', 'the text (required)'))
    .addOption(valueOption('--message-id <uuid>', 'the message id (default: a new UUID)', uuid))
    .addOption(valueOption('--run-immediately [bool]', 'let the bot answer at once', bool).preset('true'))
    .addOption(valueOption('--audio-response [bool]', 'speak the answer', bool).preset('true'))
    .action(
      run<{ id: string; messageText: string; messageId?: string; runImmediately?: boolean; audioResponse?: boolean }>(
        async (s, o) =>
          s.request(await s.ownerQueue(o.id), '/v1/messages', 'POST', {
            pipecatcall_id: o.id,
            message_id: o.messageId ?? newUuid(),
            message_text: o.messageText,
            run_immediately: o.runImmediately ?? false,
            audio_response: o.audioResponse ?? false,
          }),
        'id',
        'messageText',
      ),
    );

  program
    .command('ping')
    .description("GET /v1/ping on an instance's queue")
    .addOption(hostOption())
    .action(run<{ hostId?: string }>((s, o) => s.request(perHostQueue(o.hostId ?? s.config.podIp), '/v1/ping', 'GET')));

  track(program.command('call').description('act as Asterisk on a call'))
    .command('dial')
    .description('connect to the Audiosocket server, stream a WAV at real-time pace, record the reply, hang up')
    .addOption(valueOption('--wav <file>', '8 or 16 kHz mono WAV to send (required)'))
    .addOption(idOption(false))
    .addOption(valueOption('--address <host:port>', "Audiosocket server (default: the daemon's AUDIOSOCKET_LISTEN_ADDRESS)"))
    .addOption(valueOption('--rate <hz>', '8000 or 16000 (default: the WAV rate)'))
    .addOption(valueOption('--out <file>', "write the bot's audio to this WAV"))
    .addOption(valueOption('--dtmf <digits>', 'DTMF digits to send after the audio (0-9 * # A-D)'))
    .addOption(valueOption('--timeout <seconds>', 'silence sent after the audio before hanging up (default 10)'))
    .addOption(valueOption('--greeting <seconds>', "listen this long to the bot's greeting before speaking (default 10)"))
    .action(
      run<{ wav: string; id?: string; address?: string; rate?: string; out?: string; dtmf?: string; timeout?: string; greeting?: string }>(
        (s, o) =>
          dialCall(s.config, {
            wav: o.wav,
            id: o.id ?? newUuid(),
            address: o.address,
            rate: o.rate,
            out: o.out,
            dtmf: o.dtmf,
            timeout: o.timeout,
            greeting: o.greeting,
          }),
        'wav',
      ),
    );

  return {
    program,
    result: () => result,
    helpOutput: () => help,
    reached: () => reached,
    close: () => session?.close() ?? Promise.resolve(),
  };
}
