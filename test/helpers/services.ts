// Isolation on the shared test services: a fresh MariaDB database per caller, a Redis DB index per worker, and
// a silent logger. The services themselves are checked once by global-setup.ts.

import { randomBytes } from 'node:crypto';
import { createConnection, escapeId } from 'mysql2/promise';
import type { Config, DatabaseConfig } from '../../src/config.js';
import { createLogger, type Logger } from '../../src/log.js';

export const TEST_MYSQL = { host: '127.0.0.1', port: 3306, user: 'root', password: '' } as const;

/** A database name unique to this call; Database.open creates it, drop() removes it. */
export function createTestDatabase(): Promise<{ config: DatabaseConfig; drop(): Promise<void> }> {
  const config: DatabaseConfig = { ...TEST_MYSQL, database: `pipecat_test_${randomBytes(6).toString('hex')}` };
  const drop = async (): Promise<void> => {
    const conn = await createConnection({ ...TEST_MYSQL, connectTimeout: 5_000 });
    try {
      await conn.query(`DROP DATABASE IF EXISTS ${escapeId(config.database)}`);
    } finally {
      await conn.end();
    }
  };
  return Promise.resolve({ config, drop });
}

/**
 * A Redis DB index for this worker (2..15: 0 and 1 are the defaults a developer's daemon uses). Keys are fixed by
 * SPEC §6.3 but carry random UUIDs, so tests sharing an index never collide as long as each deletes only its own.
 */
export function testRedisConfig(): NonNullable<Config['redis']> {
  const worker = Number(process.env.VITEST_POOL_ID ?? process.pid);
  return { host: '127.0.0.1', port: 6379, password: '', database: 2 + ((Number.isFinite(worker) ? worker : 0) % 14) };
}

let silent: Logger | undefined;

export function testLogger(): Logger {
  silent ??= createLogger('silent');
  return silent;
}
