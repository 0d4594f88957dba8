// Commander options shared by both programs: option values that never swallow the next flag, and every
// configuration variable as a kebab-case flag. The values go to loadConfig (src/config.ts), the one place where
// flags, the environment and .env are merged and validated.

import { type Command, InvalidArgumentError, Option } from 'commander';
import { CONFIG_VARIABLES, flagName } from '../config.js';

const CONFIG_HELP_GROUP = 'Configuration (each flag is also an environment variable or .env entry; flags win):';

/**
 * An option that takes one value. Commander gives a required option-argument whatever follows it, so
 * `--id --host-id h` would make the id "--host-id": a value shaped like a long option is refused here, and so is
 * an option given twice (which of the two values was meant is ambiguous).
 */
export function valueOption(flags: string, description: string, parse?: (value: string) => unknown): Option {
  return new Option(flags, description).argParser((value: string, previous: unknown) => {
    if (previous !== undefined) throw new InvalidArgumentError('the option is given more than once.');
    if (/^--[^-]/.test(value)) throw new InvalidArgumentError(`the value is missing (${value} is an option).`);
    return parse === undefined ? value : parse(value);
  });
}

function describe(name: string, defaultValue: string, doc: string): string {
  const shown = defaultValue.length > 48 ? `${defaultValue.slice(0, 45)}...` : defaultValue;
  return `${doc} [${name}${defaultValue === '' ? '' : `, default ${shown}`}]`;
}

/**
 * Declares `--<variable-in-kebab-case> <value>` for every configuration variable on `cmd`. Returns a function that
 * reads the values given on the command line back, by variable name, for loadConfig's `flags`.
 */
export function addConfigOptions(cmd: Command): () => Record<string, string> {
  const byAttribute = new Map<string, string>();
  for (const [name, defaultValue, doc] of CONFIG_VARIABLES) {
    const option = valueOption(`--${flagName(name)} <value>`, describe(name, defaultValue, doc)).helpGroup(CONFIG_HELP_GROUP);
    byAttribute.set(option.attributeName(), name);
    cmd.addOption(option);
  }
  return () => {
    const out: Record<string, string> = {};
    for (const [attribute, value] of Object.entries(cmd.opts())) {
      const name = byAttribute.get(attribute);
      if (name !== undefined && typeof value === 'string') out[name] = value;
    }
    return out;
  };
}
