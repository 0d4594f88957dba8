// Process signals other than SIGTERM/SIGINT (the graceful stop in cmd/). SIGHUP and SIGUSR2 end a Node process
// by default, with no log line, no 0x00 to Asterisk and rows left live: here they are logged and the daemon carries
// on. SIGUSR1 makes Node open its inspector on 127.0.0.1:9229, where any local process could run code in the
// daemon: unless SIGUSR1_INSPECTOR=on, the inspector's port is held by a socket of ours so it cannot open.

import { createServer, type Server } from 'node:net';
import type { Config } from './config.js';
import type { Logger } from './log.js';

export interface ProcessSignals {
  /** Removes the handlers and releases the inspector's port. Idempotent. */
  close(): void;
}

/**
 * Installs the handlers. Node 20 has no switch to turn SIGUSR1 off, and a listener alone does not reliably stop
 * the inspector, so its port (process.debugPort) is pointed at a loopback socket this process already listens on:
 * Node then fails to bind and says so on stderr, and nothing is opened.
 */
export function installProcessSignals(config: Pick<Config, 'sigusr1Inspector'>, log: Logger): ProcessSignals {
  const carryOn = (signal: NodeJS.Signals, what: string) => (): void => log.info({ signal }, what);
  const handlers: Array<[NodeJS.Signals, () => void]> = [
    ['SIGHUP', carryOn('SIGHUP', 'SIGHUP received: there is nothing to reload (configuration is read at start); carrying on')],
    ['SIGUSR2', carryOn('SIGUSR2', 'SIGUSR2 received: ignored; carrying on')],
  ];
  let blocker: Server | null = null;
  if (!config.sigusr1Inspector) {
    handlers.push(['SIGUSR1', carryOn('SIGUSR1', 'SIGUSR1 received: the Node inspector stays closed (SIGUSR1_INSPECTOR=off)')]);
    const server = createServer((socket) => socket.destroy());
    server.on('error', (err) => log.warn({ err: err.message }, 'cannot hold the inspector port; SIGUSR1 may open the inspector'));
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (typeof address === 'object' && address !== null) process.debugPort = address.port;
    });
    // It must not keep the process alive on its own.
    server.unref();
    blocker = server;
  }
  for (const [signal, handler] of handlers) process.on(signal, handler);
  let closed = false;
  return {
    close(): void {
      if (closed) return;
      closed = true;
      for (const [signal, handler] of handlers) process.off(signal, handler);
      blocker?.close();
    },
  };
}
