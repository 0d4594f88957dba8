// pipecat-manager: the daemon's entry point. Parses flags, loads the configuration, starts the App and stops
// it gracefully on SIGTERM/SIGINT. A dependency unreachable at startup is one clear line and exit code 1.

import { App } from '../app.js';
import { loadConfig } from '../config.js';
import { AppError, DependencyError, messageOf } from '../errors.js';
import { createLogger } from '../log.js';
import { HelpShown } from './commander-errors.js';
import { parseManagerArgs } from './manager-cli.js';
import { installProcessSignals } from '../process-signals.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig({ env: process.env, flags: parseManagerArgs(process.argv.slice(2)), dotenvDir: process.cwd() });
  } catch (err) {
    if (err instanceof HelpShown) return;
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
