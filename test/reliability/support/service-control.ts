// Stops and starts the real shared services the way an operator (and .ci/run) does, and waits until each answers
// again. Only for the sequential reliability run: every other test on the machine loses the service meanwhile.

import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createConnection } from 'mysql2/promise';
import { Redis } from 'ioredis';
import { waitUntil } from '../../helpers/wait.js';

const exec = promisify(execFile);

async function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await exec(cmd, args, { timeout: timeoutMs });
    return stdout;
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.setTimeout(1000);
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('timeout', () => done(false));
    s.once('error', () => done(false));
  });
}

// ----- RabbitMQ: the Erlang node stays up, the rabbit application (and port 5672) goes away. -----------------------

export async function stopRabbitMq(): Promise<void> {
  await run('rabbitmqctl', ['stop_app']);
  await waitUntil('RabbitMQ to close port 5672', async () => !(await portOpen(5672)), 30_000, 50);
}

export async function startRabbitMq(): Promise<void> {
  if (!(await portOpen(5672))) {
    try {
      await run('rabbitmqctl', ['start_app']);
    } catch {
      // The node itself is down (not just the app): start it the way .ci/run does.
      await run('rabbitmq-server', ['-detached']);
    }
  }
  await run('rabbitmqctl', ['await_startup'], 120_000);
  await waitUntil('RabbitMQ on port 5672', () => portOpen(5672), 60_000, 100);
}

// ----- MariaDB: shut down cleanly, started again as .ci/run starts it. ----------------------------------------------

async function mysqlAnswers(): Promise<boolean> {
  try {
    const c = await createConnection({ host: '127.0.0.1', port: 3306, user: 'root', password: '', connectTimeout: 1000 });
    await c.query('SELECT 1');
    await c.end();
    return true;
  } catch {
    return false;
  }
}

export async function stopMysql(): Promise<void> {
  try {
    await run('mysqladmin', ['-uroot', 'shutdown']);
  } catch {
    await run('mysqladmin', ['-uroot', '-h127.0.0.1', 'shutdown']);
  }
  await waitUntil('MariaDB to close port 3306', async () => !(await portOpen(3306)), 30_000, 50);
}

export async function startMysql(): Promise<void> {
  if (!(await mysqlAnswers())) {
    mkdirSync('/run/mysqld', { recursive: true });
    await run('chown', ['mysql:mysql', '/run/mysqld']).catch(() => undefined);
    await run('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', '/usr/sbin/mariadbd']);
  }
  await waitUntil('MariaDB to answer SELECT 1', mysqlAnswers, 60_000, 100);
}

// ----- Redis: no persistence in tests; started with .ci/run's flags. ------------------------------------------------

async function redisAnswers(): Promise<boolean> {
  const r = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export async function stopRedis(): Promise<void> {
  // redis-cli reports the dropped connection of a successful shutdown as an error on some versions.
  await run('redis-cli', ['-h', '127.0.0.1', '-p', '6379', 'shutdown', 'nosave']).catch(() => undefined);
  await waitUntil('Redis to close port 6379', async () => !(await portOpen(6379)), 30_000, 50);
}

export async function startRedis(): Promise<void> {
  if (!(await redisAnswers())) {
    mkdirSync('/var/lib/redis', { recursive: true });
    mkdirSync('/var/log/redis', { recursive: true });
    await run('redis-server', [
      '--daemonize', 'yes', '--bind', '127.0.0.1', '-::1', '--port', '6379', '--save', '', '--appendonly', 'no',
      '--dir', '/var/lib/redis', '--logfile', '/var/log/redis/ci.log',
    ]);
  }
  await waitUntil('Redis to answer PING', redisAnswers, 30_000, 50);
}

/** Brings back whatever a failed test may have left stopped; a no-op when everything is up. */
export async function restoreAllServices(): Promise<void> {
  const errors: string[] = [];
  for (const [name, start] of [
    ['MariaDB', startMysql],
    ['Redis', startRedis],
    ['RabbitMQ', startRabbitMq],
  ] as const) {
    try {
      await start();
    } catch (err) {
      errors.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (errors.length > 0) throw new Error(`could not restore the services: ${errors.join('; ')}`);
  await sleep(0);
}
