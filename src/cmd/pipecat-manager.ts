// pipecat-manager: the daemon's entry point. Parses flags, loads the configuration, starts the App and stops
// it gracefully on SIGTERM/SIGINT. A dependency unreachable at startup is one clear line and exit code 1.

import { App } from '../app.js';
import { CONFIG_VARIABLES, flagName, loadConfig, parseConfigFlags } from '../config.js';
import { AppError, DependencyError, messageOf } from '../errors.js';
import { createLogger } from '../log.js';
import { installProcessSignals } from '../process-signals.js';

function usage(): string {
  const lines = CONFIG_VARIABLES.map(([name, def]) => `  --${flagName(name).padEnd(34)} ${name}${def !== '' ? ` (default ${def.length > 40 ? `${def.slice(0, 37)}...` : def})` : ''}`);
  return `pipecat-manager — AI voice agent daemon for Asterisk Audiosocket calls

Usage: pipecat-manager [--flag value]...
Every flag has an environment variable (and .env entry) of the same name:
${lines.join('\n')}
`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage());
    return;
  }
  let config;
  try {
    config = loadConfig({ env: process.env, flags: parseConfigFlags(argv), dotenvDir: process.cwd() });
  } catch (err) {
    process.stderr.write(`pipecat-manager: ${messageOf(err)}\n`);
    process.exit(2);
  }
  const log = createLogger(config.logLevel);
  installProcessSignals(config, log);

  let app: App;
  try {
    app = await App.start(config, log);
  } catch (err) {
    const what = err instanceof DependencyError ? messageOf(err) : err instanceof AppError ? messageOf(err) : `startup failed: ${messageOf(err)}`;
    process.stderr.write(`pipecat-manager: ${what}\n`);
    log.flush();
    process.exit(1);
  }

  let signals = 0;
  const stop = (signal: string): void => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      log.flush();
      process.exit(1);
    }
    log.info({ signal }, 'signal received');
    app.shutdown().then(
      () => {
        log.flush();
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err: messageOf(err) }, 'shutdown failed');
        log.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // The daemon never dies on a stray rejection from a library: it is logged and counted as an error.
  process.on('unhandledRejection', (reason) => {
    log.error({ err: messageOf(reason) }, 'unhandled promise rejection');
  });
}

await main();
