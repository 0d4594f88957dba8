// The Redis cache of Pipecatcall records (SPEC §6.3): key pipecatcall:<id> → the Go-compatible JSON, 24 h TTL.
// A Redis outage never fails a caller: get/set log (rate-limited), count and fall back to "no cache".

import { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { DependencyError, messageOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { decodePipecatcall, encodePipecatcall, type Pipecatcall } from '../model/pipecatcall.js';

export type RedisConfig = NonNullable<Config['redis']>;

const TTL_SECONDS = 86_400;
const WARN_INTERVAL_MS = 30_000;

export function pipecatcallKey(id: string): string {
  return `pipecatcall:${id}`;
}

export class PipecatcallCache {
  private readonly client: Redis;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly where: string;
  private lastError: unknown = null;
  private readonly lastWarnAt = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();
  private closing: Promise<void> | null = null;

  /** Builds the client without connecting: the first command connects (use open() to require Redis at startup). */
  constructor(cfg: RedisConfig, log: Logger, metrics: Metrics) {
    this.log = log;
    this.metrics = metrics;
    this.where = `${cfg.host}:${cfg.port}`;
    this.client = new Redis({
      host: cfg.host,
      port: cfg.port,
      db: cfg.database,
      ...(cfg.password !== '' ? { password: cfg.password } : {}),
      lazyConnect: true,
      // During an outage commands fail at once instead of queueing behind a reconnect.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2_000,
      // A stalled (not down) Redis must not stall a call either.
      commandTimeout: 1_000,
      retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
    });
    // Without a listener ioredis prints every connection error to the console.
    this.client.on('error', (err: unknown) => {
      this.lastError = err;
      this.warn('connection', err);
    });
  }

  /** Connects now; a Redis that cannot be reached at startup is a DependencyError naming its address. */
  static async open(cfg: RedisConfig, log: Logger, metrics: Metrics): Promise<PipecatcallCache> {
    const cache = new PipecatcallCache(cfg, log, metrics);
    try {
      await cache.client.connect();
    } catch (err) {
      const reason = cache.lastError ?? err;
      await cache.close();
      throw new DependencyError('redis', `cannot connect to Redis at ${cache.where}: ${reasonOf(reason, cfg)}`, {
        cause: reason,
      });
    }
    return cache;
  }

  async get(id: string): Promise<Pipecatcall | null> {
    let json: string | null;
    try {
      json = await this.client.get(pipecatcallKey(id));
    } catch (err) {
      this.fail('get', err);
      return null;
    }
    return json === null ? null : decodePipecatcall(json);
  }

  async set(p: Pipecatcall): Promise<void> {
    try {
      await this.client.set(pipecatcallKey(p.id), encodePipecatcall(p), 'EX', TTL_SECONDS);
    } catch (err) {
      this.fail('set', err);
    }
  }

  async ping(): Promise<void> {
    try {
      await this.client.ping();
    } catch (err) {
      throw new DependencyError('redis', `Redis at ${this.where} is unreachable: ${messageOf(err)}`, { cause: err });
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.client.status === 'ready') {
        try {
          await this.client.quit();
          return;
        } catch {
          // fall through: drop the connection instead
        }
      }
      this.client.disconnect();
    })();
    return this.closing;
  }

  private fail(operation: 'get' | 'set', err: unknown): void {
    this.metrics.cacheErrorsTotal.inc({ operation });
    this.warn(operation, err);
  }

  // One line per operation kind per interval, so an outage of minutes is a handful of lines, not thousands.
  private warn(operation: string, err: unknown): void {
    const now = Date.now();
    const last = this.lastWarnAt.get(operation);
    if (last !== undefined && now - last < WARN_INTERVAL_MS) {
      this.suppressed.set(operation, (this.suppressed.get(operation) ?? 0) + 1);
      return;
    }
    const suppressed = this.suppressed.get(operation) ?? 0;
    this.lastWarnAt.set(operation, now);
    this.suppressed.delete(operation);
    this.log.warn(
      { redis: this.where, operation, err: reasonOf(err), suppressed },
      operation === 'connection' ? 'Redis connection error' : `Redis ${operation} failed; using the database`,
    );
  }
}

function reasonOf(err: unknown, cfg?: Pick<RedisConfig, 'password'>): string {
  // Node's happy-eyeballs AggregateError has an empty message but a code.
  const code = (err as { code?: unknown } | null)?.code;
  const raw = err instanceof Error && err.message === '' && typeof code === 'string' ? code : messageOf(err);
  return cfg !== undefined && cfg.password !== '' ? raw.split(cfg.password).join('***') : raw;
}
