// Command-line parsing shared by the daemon and the CLI: `--name value`, `--name=value` and bare boolean flags.

export class UsageError extends Error {}

export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string>;
}

/** Splits argv into positionals and flags; `booleans` are flags that take no value (`--x` = `--x=true`). */
export function parseArgs(argv: readonly string[], booleans: ReadonlySet<string>): ParsedArgs {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    if (name === '') throw new UsageError(`bad flag ${JSON.stringify(arg)}`);
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (booleans.has(name)) value = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`flag --${name} needs a value`);
      value = next;
      i++;
    }
    if (flags.has(name)) throw new UsageError(`flag --${name} given twice`);
    flags.set(name, value);
  }
  return { positional, flags };
}
