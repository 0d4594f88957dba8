// Chooses and opens the call store from the configuration: MySQL when DATABASE_DSN is set, else the embedded
// SQLite file; Redis in front when REDIS_ADDRESS is set, else no cache. The one place that knows both modes.

import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { PipecatcallCache } from './cache.js';
import { Database } from './mysql.js';
import { NO_CACHE, PipecatcallStore, type PipecatcallCacheLike, type PipecatcallRows } from './pipecatcall-store.js';
import { PipecatcallRepository } from './pipecatcalls.js';
import { SqliteDatabase } from './sqlite.js';
import { SqlitePipecatcallRepository } from './sqlite-pipecatcalls.js';

export interface StoreModes {
  /** `mysql host:port/db` or `sqlite /path/file`. */
  database: string;
  /** `redis host:port/index` or `none`. */
  cache: string;
}

export interface OpenedStore {
  store: PipecatcallStore;
  modes: StoreModes;
  /** Readiness checks by dependency name (mysql or sqlite, and redis when configured). */
  checks: Record<string, () => Promise<void>>;
  /** True while the database answers slowly (queries running out of their deadline): RPCs shed on it. */
  isSlow: () => boolean;
  /** Closes the cache, then the database. Idempotent. */
  close(): Promise<void>;
}

export async function openStore(config: Config, log: Logger, metrics: Metrics): Promise<OpenedStore> {
  const checks: Record<string, () => Promise<void>> = {};
  const closers: Array<() => Promise<void> | void> = [];
  let rows: PipecatcallRows;
  let databaseMode: string;
  let isSlow = (): boolean => false;
  if (config.database !== null) {
    const db = await Database.open(config.database, log, { queryTimeoutMs: config.databaseQueryTimeoutMs });
    isSlow = () => db.isSlow;
    closers.push(() => db.close());
    checks.mysql = () => db.ping();
    rows = new PipecatcallRepository(db);
    databaseMode = `mysql ${config.database.host}:${config.database.port}/${config.database.database}`;
  } else {
    const db = SqliteDatabase.open(config.databasePath, log);
    closers.push(() => db.close());
    checks.sqlite = () => db.ping();
    rows = new SqlitePipecatcallRepository(db);
    databaseMode = `sqlite ${config.databasePath}`;
  }

  let cache: PipecatcallCacheLike = NO_CACHE;
  let cacheMode = 'none';
  if (config.redis !== null) {
    let redis: PipecatcallCache;
    try {
      redis = await PipecatcallCache.open(config.redis, log, metrics);
    } catch (err) {
      for (const close of closers.reverse()) await close();
      throw err;
    }
    closers.push(() => redis.close());
    checks.redis = () => redis.ping();
    cache = redis;
    cacheMode = `redis ${config.redis.host}:${config.redis.port}/${config.redis.database}`;
  }

  let closing: Promise<void> | null = null;
  return {
    store: new PipecatcallStore(rows, cache),
    modes: { database: databaseMode, cache: cacheMode },
    checks,
    isSlow: () => isSlow(),
    close: () => {
      closing ??= (async () => {
        for (const close of closers.splice(0).reverse()) await close();
      })();
      return closing;
    },
  };
}
