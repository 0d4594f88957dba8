// Isolated shares of the machine's MariaDB, RabbitMQ and Redis for one benchmark run: a database and a vhost of
// its own (dropped afterwards) and a Redis index whose keys the run deletes again (they are per-call UUIDs).

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { createConnection, escapeId } from 'mysql2/promise';

const run = promisify(execFile);

/** Redis index for the bench: 0 is used by neither the tests (2..15) nor a developer's daemon (1). */
export const BENCH_REDIS_DB = 0;

export interface BenchServices {
  database: string;
  vhost: string;
  rabbitUrl: string;
  redisDb: number;
  /** Drops the database and the vhost and deletes the cache keys of `callIds`. Never throws. */
  cleanup(callIds: Iterable<string>): Promise<string[]>;
}

async function rabbitmqctl(...args: string[]): Promise<void> {
  try {
    await run('rabbitmqctl', args, { timeout: 60_000 });
  } catch (err) {
    throw new Error(`rabbitmqctl ${args.join(' ')} failed (is RabbitMQ running?): ${(err as Error).message}`, { cause: err });
  }
}

export async function createBenchServices(): Promise<BenchServices> {
  const suffix = randomBytes(5).toString('hex');
  const database = `pipecat_bench_${suffix}`;
  const vhost = `pipecat_bench_${suffix}`;
  // MariaDB reachable? (the daemon creates the database itself; this only fails early with a clear message)
  const conn = await createConnection({ host: '127.0.0.1', port: 3306, user: 'root', password: '', connectTimeout: 5000 }).catch(
    (err: unknown) => {
      throw new Error(`MariaDB at 127.0.0.1:3306 is not reachable as root with an empty password: ${(err as Error).message}`);
    },
  );
  await conn.end();
  await rabbitmqctl('add_vhost', vhost);
  await rabbitmqctl('set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*');
  return {
    database,
    vhost,
    rabbitUrl: `amqp://guest:guest@127.0.0.1:5672/${encodeURIComponent(vhost)}`,
    redisDb: BENCH_REDIS_DB,
    async cleanup(callIds) {
      const problems: string[] = [];
      try {
        const c = await createConnection({ host: '127.0.0.1', port: 3306, user: 'root', password: '' });
        await c.query(`DROP DATABASE IF EXISTS ${escapeId(database)}`);
        await c.end();
      } catch (err) {
        problems.push(`drop database ${database}: ${(err as Error).message}`);
      }
      try {
        await rabbitmqctl('delete_vhost', vhost);
      } catch (err) {
        problems.push((err as Error).message);
      }
      const redis = new Redis({ host: '127.0.0.1', port: 6379, db: BENCH_REDIS_DB, lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        let batch: string[] = [];
        for (const id of callIds) {
          batch.push(`pipecatcall:${id}`);
          if (batch.length === 500) {
            await redis.del(...batch);
            batch = [];
          }
        }
        if (batch.length > 0) await redis.del(...batch);
      } catch (err) {
        problems.push(`redis cleanup: ${(err as Error).message}`);
      } finally {
        redis.disconnect();
      }
      return problems;
    },
  };
}
