// pipecat-control: the operator CLI (SPEC §10). JSON results on stdout, errors on stderr as {"error":"…"};
// exit 0 success, 1 failure, 2 usage error. Talks to the daemon over RabbitMQ RPC, and to its Audiosocket
// server for `call dial`.

import { ConfigError, messageOf, redactSecrets } from '../errors.js';
import { RpcStatusError } from '../rpc/client.js';
import { HelpShown, commandPath, usageErrorOf } from './commander-errors.js';
import { buildControlProgram } from './control-program.js';
import { UsageError } from './usage-error.js';

function fail(code: number, message: string): void {
  process.stderr.write(`${JSON.stringify({ error: redactSecrets(message) })}\n`);
  process.exitCode = code;
}

async function main(): Promise<void> {
  const cli = buildControlProgram(process.env, process.cwd());
  try {
    await cli.program.parseAsync(process.argv.slice(2), { from: 'user' });
    process.stdout.write(`${JSON.stringify(cli.result(), null, 2)}\n`);
  } catch (caught) {
    const err = usageErrorOf(caught);
    if (err instanceof HelpShown) return;
    const at = cli.reached();
    if ((caught as { code?: unknown }).code === 'commander.help') {
      const names = at.commands.map((c) => c.name()).join(', ');
      fail(2, `${commandPath(at)}: a command is needed: ${names} (see ${commandPath(at)} --help)`);
    } else if (err instanceof UsageError || err instanceof ConfigError) {
      fail(2, `${messageOf(err)} (see ${commandPath(at)} --help)`);
    } else {
      const status = err instanceof RpcStatusError && !messageOf(err).includes(String(err.statusCode)) ? ` (status ${err.statusCode})` : '';
      fail(1, messageOf(err) + status);
    }
  } finally {
    await cli.close().catch(() => undefined);
  }
}

await main();
