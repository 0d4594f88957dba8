// The embedded SQLite store against the MySQL repository's contract: the same rows and Go-compatible JSON (checked
// side by side with the real MariaDB), the same sentinels and conflicts, migrations applied once, clear errors.

import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, DependencyError } from '../../src/errors.js';
import { encodePipecatcall, type Pipecatcall } from '../../src/model/pipecatcall.js';
import { TIMESTAMP_NEVER, nowTimestamp } from '../../src/model/timestamp.js';
import { NIL_UUID } from '../../src/model/uuid.js';
import { Database } from '../../src/store/mysql.js';
import { NO_CACHE, PipecatcallStore } from '../../src/store/pipecatcall-store.js';
import { PipecatcallRepository } from '../../src/store/pipecatcalls.js';
import { SqliteDatabase } from '../../src/store/sqlite.js';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite-migrations.js';
import { SqlitePipecatcallRepository } from '../../src/store/sqlite-pipecatcalls.js';
import { createTestDatabase, testLogger } from '../helpers/services.js';

const log = testLogger();

function sample(over: Partial<Pipecatcall> = {}): Pipecatcall {
  return {
    id: randomUUID(),
    customer_id: randomUUID(),
    activeflow_id: NIL_UUID,
    reference_type: 'call',
    reference_id: randomUUID(),
    host_id: '10.0.0.7',
    llm_type: 'openai.gpt-4o',
    llm_messages: [
      { role: 'system', content: 'You are a receptionist. Héllo 👋 <&> "quoted" \\ \u2028' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'x', arguments: '{}' } }] },
    ],
    stt_type: 'deepgram',
    stt_language: 'en-US',
    tts_type: 'cartesia',
    tts_language: '',
    tts_voice_id: 'voice-1',
    tm_create: nowTimestamp(),
    tm_update: '',
    tm_delete: '',
    ...over,
  };
}

describe('SQLite store', () => {
  let dir: string;
  let db: SqliteDatabase;
  let repo: SqlitePipecatcallRepository;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sqlite-store-'));
    db = SqliteDatabase.open(join(dir, 'nested', 'dir', 'calls.sqlite'), log);
    repo = new SqlitePipecatcallRepository(db);
  });
  afterAll(() => db?.close());

  it('writes and reads back the very row MySQL does (same JSON, byte for byte)', async () => {
    const testDb = await createTestDatabase();
    const mysql = await Database.open(testDb.config, log);
    try {
      const mysqlRepo = new PipecatcallRepository(mysql);
      for (const p of [sample(), sample({ llm_messages: [], stt_type: '', customer_id: NIL_UUID })]) {
        await repo.insert(p);
        await mysqlRepo.insert(p);
        const fromSqlite = await repo.get(p.id);
        const fromMysql = await mysqlRepo.get(p.id);
        expect(fromSqlite).not.toBeNull();
        expect(encodePipecatcall(fromSqlite as Pipecatcall)).toBe(encodePipecatcall(fromMysql as Pipecatcall));
        const ts = nowTimestamp();
        await repo.markDeleted(p.id, ts);
        await mysqlRepo.markDeleted(p.id, ts);
        expect(encodePipecatcall((await repo.get(p.id)) as Pipecatcall)).toBe(
          encodePipecatcall((await mysqlRepo.get(p.id)) as Pipecatcall),
        );
      }
    } finally {
      await mysql.close();
      await testDb.drop();
    }
  });

  it('starts rows at the sentinel, refuses a duplicate id, ends a live row once', async () => {
    const p = sample({ tm_create: '' });
    await repo.insert(p);
    const row = await repo.get(p.id);
    expect(row).toMatchObject({ tm_update: TIMESTAMP_NEVER, tm_delete: TIMESTAMP_NEVER });
    expect(row?.tm_create).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
    await expect(repo.insert(p)).rejects.toBeInstanceOf(ConflictError);
    expect(await repo.markDeleted(p.id, '2026-01-02 03:04:05.123456')).toBe(true);
    expect(await repo.markDeleted(p.id, '2026-01-02 03:04:09.000000')).toBe(false);
    expect((await repo.get(p.id))?.tm_delete).toBe('2026-01-02 03:04:05.123456');
    expect(await repo.markDeleted(randomUUID(), nowTimestamp())).toBe(false);
    expect(await repo.get(randomUUID())).toBeNull();
  });

  it('lists the live rows of one host, oldest first (the startup recovery query)', async () => {
    const host = `host-${randomUUID()}`;
    const a = sample({ host_id: host, tm_create: '2026-01-01 00:00:01.000000' });
    const b = sample({ host_id: host, tm_create: '2026-01-01 00:00:00.000000' });
    const ended = sample({ host_id: host });
    const other = sample({ host_id: `${host}-other` });
    for (const p of [a, b, ended, other]) await repo.insert(p);
    await repo.markDeleted(ended.id, nowTimestamp());
    expect((await repo.listLiveByHost(host)).map((r) => r.id)).toEqual([b.id, a.id]);

    // The same through the store without a cache, as the embedded daemon builds it.
    const store = new PipecatcallStore(repo, NO_CACHE);
    const row = await store.markDeleted(a.id);
    expect(row?.tm_delete).not.toBe(TIMESTAMP_NEVER);
    expect((await store.listLiveByHost(host)).map((r) => r.id)).toEqual([b.id]);
  });

  it('applies each migration once, also when the file is opened again', () => {
    const path = join(dir, 'again.sqlite');
    SqliteDatabase.open(path, log).close();
    const again = SqliteDatabase.open(path, log);
    try {
      const versions = again.handle.prepare('SELECT version FROM schema_migrations ORDER BY version').all();
      expect(versions).toEqual(SQLITE_MIGRATIONS.map((m) => ({ version: m.version })));
      const indexes = again.handle
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pipecat_pipecatcalls' AND name LIKE 'idx_%'")
        .all() as Array<{ name: string }>;
      expect(indexes.map((i) => i.name).sort()).toEqual([
        'idx_pipecat_pipecatcalls_activeflow_id',
        'idx_pipecat_pipecatcalls_customer_id',
        'idx_pipecat_pipecatcalls_host_id',
        'idx_pipecat_pipecatcalls_host_id_tm_delete',
        'idx_pipecat_pipecatcalls_reference_id',
        'idx_pipecat_pipecatcalls_reference_type',
        'idx_pipecat_pipecatcalls_tm_create',
      ]);
    } finally {
      again.close();
      again.close(); // idempotent
    }
  });

  it('refuses a second owner of the same file until the first closes it', () => {
    const path = join(dir, 'owned.sqlite');
    const first = SqliteDatabase.open(path, log);
    try {
      expect(() => SqliteDatabase.open(path, log)).toThrow(/in use by another pipecat-manager/);
    } finally {
      first.close();
    }
    SqliteDatabase.open(path, log).close();
  });

  it('names the file when it cannot be opened, and fails operations after close with DependencyError', async () => {
    const notADir = join(dir, 'plain-file');
    writeFileSync(notADir, 'x');
    expect(() => SqliteDatabase.open(join(notADir, 'calls.sqlite'), log)).toThrow(
      new RegExp(`cannot open the SQLite database ${notADir}/calls.sqlite`),
    );
    const garbage = join(dir, 'garbage.sqlite');
    writeFileSync(garbage, 'this is not a database, just text long enough to have a header............');
    chmodSync(garbage, 0o600);
    expect(() => SqliteDatabase.open(garbage, log)).toThrow(DependencyError);

    const closing = SqliteDatabase.open(join(dir, 'closing.sqlite'), log);
    const r = new SqlitePipecatcallRepository(closing);
    closing.close();
    await expect(r.get(randomUUID())).rejects.toBeInstanceOf(DependencyError);
    await expect(closing.ping()).rejects.toThrow(/closing\.sqlite/);
  });
});
