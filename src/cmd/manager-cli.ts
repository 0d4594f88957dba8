// The daemon's command line: every configuration variable as a flag (generated help lists them with their
// variable and default), nothing else.

import { Command } from 'commander';
import { addConfigOptions } from './options.js';
import { throwOnUsageErrors, usageErrorOf } from './commander-errors.js';

/** The configuration values given as flags, by variable name; throws HelpShown after --help, UsageError on a typo. */
export function parseManagerArgs(argv: readonly string[]): Record<string, string> {
  const program = throwOnUsageErrors(new Command('pipecat-manager'))
    .description('AI voice agent daemon for Asterisk Audiosocket calls (RabbitMQ RPC, MySQL, Redis)')
    .usage('[--flag value]...');
  const flags = addConfigOptions(program);
  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    throw usageErrorOf(err);
  }
  return flags();
}
