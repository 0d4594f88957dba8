// One pipecat-control command line run to completion, as an exit code and the text for stdout and stderr, so
// that the program and the tests share it (SPEC §10: JSON results on stdout, {"error":"…"} on stderr).

import { ConfigError, messageOf, redactSecrets } from '../errors.js';
import { RpcStatusError } from '../rpc/client.js';
import { HelpShown, commandPath, usageErrorOf } from './commander-errors.js';
import { buildControlProgram } from './control-program.js';
import { UsageError } from './usage-error.js';

export interface ControlOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one command line to completion; never throws (every failure is an exit code and a JSON error). */
export async function runControl(argv: readonly string[], env: NodeJS.ProcessEnv, dotenvDir: string): Promise<ControlOutcome> {
  const cli = buildControlProgram(env, dotenvDir);
  const fail = (code: number, message: string): ControlOutcome => ({
    code,
    stdout: '',
    stderr: `${JSON.stringify({ error: redactSecrets(message) })}\n`,
  });
  try {
    await cli.program.parseAsync([...argv], { from: 'user' });
    return { code: 0, stdout: `${JSON.stringify(cli.result(), null, 2)}\n`, stderr: '' };
  } catch (caught) {
    const err = usageErrorOf(caught);
    if (err instanceof HelpShown) return { code: 0, stdout: cli.helpOutput(), stderr: '' };
    const at = cli.reached();
    if ((caught as { code?: unknown }).code === 'commander.help') {
      const names = at.commands.map((c) => c.name()).join(', ');
      return fail(2, `${commandPath(at)}: a command is needed: ${names} (see ${commandPath(at)} --help)`);
    }
    if (err instanceof UsageError || err instanceof ConfigError) return fail(2, `${messageOf(err)} (see ${commandPath(at)} --help)`);
    const status = err instanceof RpcStatusError && !messageOf(err).includes(String(err.statusCode)) ? ` (status ${err.statusCode})` : '';
    return fail(1, messageOf(err) + status);
  } finally {
    await cli.close().catch(() => undefined);
  }
}

