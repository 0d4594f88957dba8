// DATABASE_MIGRATE=off on the real MariaDB: a user without DDL rights can run the daemon on a migrated database,
// and on one that is not (no database, no table, a missing or coarser column) the start fails naming what is
// missing. With migrations on, the same user cannot start at all, which is what the setting is for.

import { randomBytes } from 'node:crypto';
import { createConnection, escapeId, type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseConfig } from '../../src/config.js';
import { DependencyError } from '../../src/errors.js';
import { Database } from '../../src/store/mysql.js';
import { createTestDatabase, TEST_MYSQL, testLogger } from '../helpers/services.js';

const log = testLogger();
const USER = `pipecat_nodll_${randomBytes(4).toString('hex')}`;
const PASSWORD = randomBytes(12).toString('hex');
// MariaDB matches a TCP login from 127.0.0.1 against 'localhost', '127.0.0.1' or '%' depending on name
// resolution: the user exists under each so the test does not depend on the server's setting.
const HOSTS = ['localhost', '127.0.0.1', '%'];

let root: Connection;
const drops: Array<() => Promise<void>> = [];

async function databaseFor(migrated: boolean): Promise<DatabaseConfig> {
  const db = await createTestDatabase();
  drops.push(() => db.drop());
  if (migrated) await (await Database.open(db.config, log)).close();
  else await root.query(`CREATE DATABASE ${escapeId(db.config.database)}`);
  for (const host of HOSTS) {
    await root.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${escapeId(db.config.database)}.* TO ?@?`, [USER, host]);
  }
  return { ...db.config, user: USER, password: PASSWORD, migrate: false };
}

async function openError(cfg: DatabaseConfig): Promise<string> {
  const err = await Database.open(cfg, log).then(
    async (db) => {
      await db.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DependencyError);
  const message = (err as Error).message;
  expect(message).not.toContain(PASSWORD);
  return message;
}

beforeAll(async () => {
  root = await createConnection({ ...TEST_MYSQL, connectTimeout: 5_000 });
  for (const host of HOSTS) await root.query('CREATE USER ?@? IDENTIFIED BY ?', [USER, host, PASSWORD]);
});

afterAll(async () => {
  for (const drop of drops) await drop().catch(() => undefined);
  for (const host of HOSTS) await root?.query('DROP USER IF EXISTS ?@?', [USER, host]).catch(() => undefined);
  await root?.end();
});

describe('DATABASE_MIGRATE=off', () => {
  it('a user without DDL rights opens a migrated database and reads and writes rows', async () => {
    const cfg = await databaseFor(true);
    const db = await Database.open(cfg, log);
    try {
      const id = randomBytes(16);
      await db.pool.query('INSERT INTO pipecat_pipecatcalls (id, host_id, tm_create) VALUES (?, ?, UTC_TIMESTAMP(6))', [id, 'h']);
      const [rows] = await db.pool.query('SELECT host_id FROM pipecat_pipecatcalls WHERE id = ?', [id]);
      expect(rows).toEqual([{ host_id: 'h' }]);
    } finally {
      await db.close();
    }
  });

  it('with migrations on, the same user cannot start: that is what off is for', async () => {
    const cfg = await databaseFor(true);
    expect(await openError({ ...cfg, migrate: true })).toMatch(/denied/i);
  });

  it('a missing database is named, and not created', async () => {
    const database = `pipecat_test_${randomBytes(6).toString('hex')}`;
    const message = await openError({ ...TEST_MYSQL, database, migrate: false });
    expect(message).toContain(`MySQL database ${database} at 127.0.0.1:3306 does not exist (DATABASE_MIGRATE=off creates nothing)`);
    const [rows] = await root.query('SHOW DATABASES LIKE ?', [database]);
    expect(rows).toEqual([]);
  });

  it('a database without the table names the table', async () => {
    const cfg = await databaseFor(false);
    expect(await openError(cfg)).toMatch(/DATABASE_MIGRATE=off applies no DDL: table pipecat_pipecatcalls is missing/);
    const [tables] = await root.query(`SHOW TABLES IN ${escapeId(cfg.database)}`);
    expect(tables).toEqual([]);
  });

  it('a missing column and a column of the wrong type are each named with the type needed', async () => {
    const cfg = await databaseFor(true);
    const table = `${escapeId(cfg.database)}.pipecat_pipecatcalls`;
    await root.query(`ALTER TABLE ${table} DROP COLUMN tts_voice_id, DROP COLUMN stt_language, MODIFY tm_create datetime, MODIFY reference_id binary(15)`);
    const message = await openError(cfg);
    expect(message).toContain('pipecat_pipecatcalls lacks the column(s) stt_language varchar(255), tts_voice_id varchar(255)');
    expect(message).toContain('reference_id is binary(15), needs binary(16)');
    expect(message).toContain('tm_create is datetime, needs datetime(6)');
    expect(message).not.toMatch(/\bid is|customer_id|llm_messages/);
  });
});
