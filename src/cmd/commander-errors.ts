// Commander reports a bad command line by printing and exiting; both programs want to decide the output format
// (plain text for the daemon, JSON for the CLI) and the exit code (2) themselves.

import { type Command, CommanderError } from 'commander';
import { UsageError } from './usage-error.js';

/** Help and version output end the program successfully; they surface as this, not as an error. */
export class HelpShown extends Error {
  constructor() {
    super('help shown');
    this.name = 'HelpShown';
  }
}

/** Makes `cmd` (and the subcommands added after this call) throw instead of printing errors and exiting. */
export function throwOnUsageErrors(cmd: Command): Command {
  return cmd
    .exitOverride()
    .configureOutput({ outputError: () => undefined })
    .showSuggestionAfterError(true)
    .allowExcessArguments(false);
}

/** `pipecat-control pipecatcall get`: the command's full name, for "see … --help". */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Commander's error as HelpShown or a UsageError without its "error: " prefix; any other error unchanged. */
export function usageErrorOf(err: unknown): unknown {
  if (!(err instanceof CommanderError)) return err;
  if (err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return new HelpShown();
  return new UsageError(err.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim());
}
