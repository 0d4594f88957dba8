// The MySQL schema, the pipecatcall repository, the Redis cache and the cache-through store, against the real
// MariaDB and Redis (a database per run, a Redis DB index per worker).

import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDatabaseDsn } from '../../src/config.js';
import { ConflictError, DependencyError } from '../../src/errors.js';
import { Metrics } from '../../src/metrics.js';
import { encodePipecatcall, type Pipecatcall } from '../../src/model/pipecatcall.js';
import { TIMESTAMP_NEVER, isTimestamp, nowTimestamp } from '../../src/model/timestamp.js';
import { NIL_UUID } from '../../src/model/uuid.js';
import { PipecatcallCache, pipecatcallKey } from '../../src/store/cache.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { Database } from '../../src/store/mysql.js';
import { PipecatcallStore } from '../../src/store/pipecatcall-store.js';
import { PipecatcallRepository } from '../../src/store/pipecatcalls.js';
import { createTestDatabase, testLogger, testRedisConfig } from '../helpers/services.js';

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
      { role: 'system', content: 'You are a receptionist. Héllo 👋 <&>' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'c1', type: 'function', function: { name: 'x', arguments: '{}' } }],
      },
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

async function counter(metrics: Metrics, operation: string): Promise<number> {
  const { values } = await metrics.cacheErrorsTotal.get();
  return values.find((v) => v.labels.operation === operation)?.value ?? 0;
}

describe('store (MariaDB + Redis)', () => {
  let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
  let db: Database;
  let repo: PipecatcallRepository;
  let cache: PipecatcallCache;
  let store: PipecatcallStore;
  let redis: Redis;
  const metrics = new Metrics({ defaultMetrics: false });
  const redisConfig = testRedisConfig();
  const keys = new Set<string>();

  // Every id a test creates, so that afterAll deletes only this run's keys from the shared DB index.
  const track = (p: Pipecatcall): Pipecatcall => {
    keys.add(pipecatcallKey(p.id));
    return p;
  };

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await Database.open(testDb.config, log);
    repo = new PipecatcallRepository(db);
    cache = await PipecatcallCache.open(redisConfig, log, metrics);
    store = new PipecatcallStore(repo, cache);
    redis = new Redis({ host: redisConfig.host, port: redisConfig.port, db: redisConfig.database, lazyConnect: true });
    await redis.connect();
  });

  afterAll(async () => {
    if (keys.size > 0) await redis?.del(...keys);
    await redis?.quit();
    await cache?.close();
    await db?.close();
    await testDb?.drop();
  });

  it('creates pipecat_pipecatcalls with the column types of SPEC §6.2', async () => {
    const [cols] = await db.pool.query<RowDataPacket[]>(
      `SELECT COLUMN_NAME AS name, DATA_TYPE AS type, COLUMN_TYPE AS ctype, DATETIME_PRECISION AS prec
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'pipecat_pipecatcalls'
         ORDER BY ORDINAL_POSITION`,
      [testDb.config.database],
    );
    const byName = new Map(cols.map((c) => [String(c.name), c]));
    expect([...byName.keys()]).toEqual([
      'id', 'customer_id', 'activeflow_id', 'reference_type', 'reference_id', 'host_id', 'llm_type', 'llm_messages',
      'stt_type', 'stt_language', 'tts_type', 'tts_language', 'tts_voice_id', 'tm_create', 'tm_update', 'tm_delete',
    ]);
    for (const c of ['id', 'customer_id', 'activeflow_id', 'reference_id']) {
      expect(byName.get(c)?.ctype, c).toBe('binary(16)');
    }
    const varchars = ['reference_type', 'host_id', 'llm_type', 'stt_type', 'stt_language', 'tts_type', 'tts_language'];
    for (const c of [...varchars, 'tts_voice_id']) {
      expect(byName.get(c)?.ctype, c).toBe('varchar(255)');
    }
    // MariaDB's JSON is an alias of LONGTEXT with a json_valid check; MySQL has a native type.
    expect(['json', 'longtext']).toContain(byName.get('llm_messages')?.type);
    for (const c of ['tm_create', 'tm_update', 'tm_delete']) {
      expect(byName.get(c)?.type, c).toBe('datetime');
      expect(Number(byName.get(c)?.prec), c).toBe(6);
    }

    const [stats] = await db.pool.query<RowDataPacket[]>(
      `SELECT INDEX_NAME AS idx, COLUMN_NAME AS col FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'pipecat_pipecatcalls' ORDER BY INDEX_NAME, SEQ_IN_INDEX`,
      [testDb.config.database],
    );
    const indexes = new Map<string, string[]>();
    for (const s of stats) indexes.set(String(s.idx), [...(indexes.get(String(s.idx)) ?? []), String(s.col)]);
    const shapes = [...indexes.values()].map((cs) => cs.join(','));
    expect(indexes.get('PRIMARY')).toEqual(['id']);
    for (const c of ['customer_id', 'activeflow_id', 'reference_type', 'reference_id', 'host_id', 'tm_create']) {
      expect(shapes, c).toContain(c);
    }
    expect(shapes).toContain('host_id,tm_delete');

    const [engine] = await db.pool.query<RowDataPacket[]>(
      `SELECT ENGINE AS engine, TABLE_COLLATION AS coll FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'pipecat_pipecatcalls'`,
      [testDb.config.database],
    );
    expect(engine[0]?.engine).toBe('InnoDB');
    expect(String(engine[0]?.coll)).toMatch(/^utf8mb4_/);
  });

  it('applies each migration once when two instances open a fresh database at the same time', async () => {
    const fresh = await createTestDatabase();
    try {
      const both = await Promise.all([Database.open(fresh.config, log), Database.open(fresh.config, log)]);
      const [rows] = await both[0].pool.query<RowDataPacket[]>(
        'SELECT version, name, applied_at FROM schema_migrations ORDER BY version',
      );
      expect(rows.map((r) => Number(r.version))).toEqual(MIGRATIONS.map((m) => m.version));
      expect(rows.map((r) => String(r.name))).toEqual(MIGRATIONS.map((m) => m.name));
      await Promise.all(both.map((d) => d.close()));

      // A restart finds everything applied and changes nothing.
      const again = await Database.open(fresh.config, log);
      const [after] = await again.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM schema_migrations');
      expect(Number(after[0]?.n)).toBe(MIGRATIONS.length);
      await again.ping();
      await again.close();
      await again.close();
    } finally {
      await fresh.drop();
    }
  });

  it('round-trips a row, storing UUIDs as 16 bytes and starting tm_update/tm_delete at the sentinel', async () => {
    const p = track(sample());
    await repo.insert(p);
    expect(await repo.get(p.id)).toEqual({ ...p, tm_update: TIMESTAMP_NEVER, tm_delete: TIMESTAMP_NEVER });

    const [raw] = await db.pool.query<RowDataPacket[]>(
      `SELECT LENGTH(id) AS len, HEX(id) AS hex, HEX(customer_id) AS customer, HEX(activeflow_id) AS activeflow,
              HEX(reference_id) AS reference, CAST(tm_update AS CHAR) AS tm_update, CAST(tm_delete AS CHAR) AS tm_delete
         FROM pipecat_pipecatcalls WHERE id = UNHEX(?)`,
      [p.id.replace(/-/g, '')],
    );
    const hex = (u: string): string => u.replace(/-/g, '').toUpperCase();
    expect(raw[0]).toMatchObject({
      len: 16,
      hex: hex(p.id),
      customer: hex(p.customer_id),
      activeflow: '0'.repeat(32),
      reference: hex(p.reference_id),
      tm_update: TIMESTAMP_NEVER,
      tm_delete: TIMESTAMP_NEVER,
    });
    expect(await repo.get(randomUUID())).toBeNull();
  });

  it('reads a row without llm_messages as an empty list', async () => {
    const p = track(sample({ llm_messages: [] }));
    await repo.insert(p);
    await db.pool.query('UPDATE pipecat_pipecatcalls SET llm_messages = NULL WHERE id = UNHEX(?)', [
      p.id.replace(/-/g, ''),
    ]);
    expect((await repo.get(p.id))?.llm_messages).toEqual([]);
  });

  it('rejects a duplicate id with ConflictError', async () => {
    const p = track(sample());
    await repo.insert(p);
    const err: unknown = await repo.insert({ ...p, host_id: 'other' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toBe(`pipecatcall ${p.id} already exists`);
    await expect(store.create(p)).rejects.toThrow(ConflictError);
  });

  it('create caches the exact Go-compatible JSON for 24 h in the configured DB index', async () => {
    const p = track(sample());
    const row = await store.create(p);
    expect(row).toEqual({ ...p, tm_update: TIMESTAMP_NEVER, tm_delete: TIMESTAMP_NEVER });
    const stored = await redis.getBuffer(pipecatcallKey(p.id));
    expect(stored).not.toBeNull();
    expect(stored?.equals(Buffer.from(encodePipecatcall(row), 'utf8'))).toBe(true);
    const ttl = await redis.ttl(pipecatcallKey(p.id));
    expect(ttl).toBeGreaterThan(86_000);
    expect(ttl).toBeLessThanOrEqual(86_400);
  });

  it('get reads the cache first and fills it from the database on a miss', async () => {
    const p = track(sample());
    const row = await store.create(p);
    const key = pipecatcallKey(p.id);

    // A cached value that differs from the row proves get does not go to MySQL on a hit.
    await redis.set(key, encodePipecatcall({ ...row, host_id: 'from-cache' }), 'EX', 60);
    expect((await store.get(p.id))?.host_id).toBe('from-cache');

    await redis.del(key);
    expect(await store.get(p.id)).toEqual(row);
    expect(await redis.get(key)).toBe(encodePipecatcall(row));
    expect(await redis.ttl(key)).toBeGreaterThan(86_000);

    expect(await store.get(randomUUID())).toBeNull();
  });

  it('markDeleted sets tm_update and tm_delete once and refreshes the cache', async () => {
    const p = track(sample());
    await store.create(p);
    const deleted = await store.markDeleted(p.id);
    expect(deleted).not.toBeNull();
    expect(isTimestamp(deleted?.tm_delete ?? '')).toBe(true);
    expect(deleted?.tm_delete).not.toBe(TIMESTAMP_NEVER);
    expect(deleted?.tm_update).toBe(deleted?.tm_delete);
    expect(deleted?.tm_create).toBe(p.tm_create);
    expect(await redis.get(pipecatcallKey(p.id))).toBe(encodePipecatcall(deleted as Pipecatcall));

    expect(await repo.markDeleted(p.id, nowTimestamp())).toBe(false);
    expect(await store.markDeleted(p.id)).toEqual(deleted);
    expect(await repo.get(p.id)).toEqual(deleted);

    expect(await store.markDeleted(randomUUID())).toBeNull();
  });

  it('listLiveByHost returns the live rows of one host, oldest first', async () => {
    const host = `host-${randomUUID()}`;
    const a = track(sample({ host_id: host, tm_create: '2024-05-01 10:00:00.000001' }));
    const b = track(sample({ host_id: host, tm_create: '2024-05-01 10:00:00.000003' }));
    const c = track(sample({ host_id: host, tm_create: '2024-05-01 10:00:00.000002' }));
    const elsewhere = track(sample({ host_id: `${host}-other` }));
    for (const p of [b, a, c, elsewhere]) await store.create(p);
    await store.markDeleted(c.id);
    const live = await store.listLiveByHost(host);
    expect(live.map((r) => r.id)).toEqual([a.id, b.id]);
    expect(live[0]).toEqual({ ...a, tm_update: TIMESTAMP_NEVER, tm_delete: TIMESTAMP_NEVER });
    expect(await repo.listLiveByHost(`${host}-none`)).toEqual([]);
  });

  it('degrades to the database when Redis is unreachable, counting each failure', async () => {
    const downMetrics = new Metrics({ defaultMetrics: false });
    const down = new PipecatcallCache({ host: '127.0.0.1', port: 1, password: '', database: 0 }, log, downMetrics);
    try {
      const p = track(sample());
      expect(await down.get(p.id)).toBeNull();
      await expect(down.set(p)).resolves.toBeUndefined();
      expect(await counter(downMetrics, 'get')).toBe(1);
      expect(await counter(downMetrics, 'set')).toBe(1);
      await expect(down.ping()).rejects.toBeInstanceOf(DependencyError);

      const degraded = new PipecatcallStore(repo, down);
      const row = await degraded.create(p);
      expect(await degraded.get(p.id)).toEqual(row);
      expect((await degraded.markDeleted(p.id))?.tm_delete).not.toBe(TIMESTAMP_NEVER);
      expect(await counter(downMetrics, 'get')).toBe(2);
      expect(await counter(downMetrics, 'set')).toBe(4);
    } finally {
      await down.close();
      await down.close();
    }
  });

  it('PipecatcallCache.open fails with DependencyError naming Redis and its address', async () => {
    const err: unknown = await PipecatcallCache.open(
      { host: '127.0.0.1', port: 1, password: 'hunter2', database: 0 },
      log,
      new Metrics({ defaultMetrics: false }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DependencyError);
    expect((err as DependencyError).dependency).toBe('redis');
    expect((err as Error).message).toContain('cannot connect to Redis at 127.0.0.1:1');
    expect((err as Error).message).toContain('ECONNREFUSED');
    expect((err as Error).message).not.toContain('hunter2');
  });

  it('Database.open fails with DependencyError naming MySQL and its address, never the password', async () => {
    const closed = await Database.open(parseDatabaseDsn('mysql://root:hunter2@127.0.0.1:1/pipecat'), log).catch(
      (e: unknown) => e,
    );
    expect(closed).toBeInstanceOf(DependencyError);
    expect((closed as DependencyError).dependency).toBe('mysql');
    expect((closed as Error).message).toMatch(/^cannot connect to MySQL at 127\.0\.0\.1:1: .*ECONNREFUSED/);
    expect((closed as Error).message).not.toContain('hunter2');

    // Reachable server, wrong password: still a clear DependencyError without the secret.
    const denied = await Database.open({ ...testDb.config, password: 'hunter2' }, log).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(DependencyError);
    expect((denied as Error).message).toMatch(/^cannot connect to MySQL at 127\.0\.0\.1:3306: .*Access denied/);
    expect((denied as Error).message).not.toContain('hunter2');
  });
});
