// Runs once before the suite: every integration test needs the real MariaDB, Redis and RabbitMQ. If one is
// unreachable the run fails here, naming it and the command that starts it, instead of skipping anything.

import { connect } from 'node:net';

const SERVICES: ReadonlyArray<readonly [name: string, port: number, start: string]> = [
  ['MariaDB', 3306, 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd'],
  ['Redis', 6379, 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no'],
  ['RabbitMQ', 5672, 'rabbitmq-server -detached'],
];

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.setTimeout(2000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
  });
}

export default async function setup(): Promise<void> {
  const missing: string[] = [];
  for (const [name, port, start] of SERVICES) {
    if (!(await reachable(port))) missing.push(`${name} is not reachable on 127.0.0.1:${port} (start it: ${start})`);
  }
  if (missing.length > 0) throw new Error(`the tests need real services:\n  ${missing.join('\n  ')}`);
}
