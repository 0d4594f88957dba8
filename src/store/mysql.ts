// The MySQL/MariaDB connection pool: opened once at startup, which creates the database if missing and applies
// the schema migrations under a server-wide lock so that several instances can start at once. Every query has a
// deadline (DATABASE_QUERY_TIMEOUT_MS) covering the wait for a pooled connection and the query itself: a slow
// (not down) MySQL makes callers fail in time instead of piling up behind it.

import {
  createConnection,
  createPool,
  escapeId,
  type Pool,
  type PoolConnection,
  type ResultSetHeader,
  type RowDataPacket,
} from 'mysql2/promise';
import type { DatabaseConfig } from '../config.js';
import { DependencyError, redactSecrets } from '../errors.js';
import type { Logger } from '../log.js';
import { MIGRATIONS } from './migrations.js';
import { checkSchema } from './schema-check.js';

const MIGRATION_LOCK = 'pipecat_manager_migrations';
const MIGRATION_LOCK_WAIT_SECONDS = 60;
const CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_QUERY_TIMEOUT_MS = 2_000;

export interface DatabaseOptions {
  /** Deadline of one query, the wait for a pooled connection included. */
  queryTimeoutMs?: number;
}

// A migration interrupted between its DDL and its schema_migrations row is re-run; these mean "already done".
const ALREADY_APPLIED = new Set(['ER_DUP_KEYNAME', 'ER_TABLE_EXISTS_ERROR', 'ER_DUP_FIELDNAME']);

export class Database {
  readonly pool: Pool;
  private closing: Promise<void> | null = null;
  private lastSlowAt = -Infinity;

  private constructor(
    pool: Pool,
    private readonly cfg: DatabaseConfig,
    private readonly log: Logger,
    readonly queryTimeoutMs: number,
  ) {
    this.pool = pool;
  }

  static async open(cfg: DatabaseConfig, log: Logger, options: DatabaseOptions = {}): Promise<Database> {
    const where = `${cfg.host}:${cfg.port}`;
    const pool = createPool({
      host: cfg.host,
      port: cfg.port,
      user: cfg.user,
      password: cfg.password,
      database: cfg.database,
      connectionLimit: 10,
      // Bounded: during an outage callers fail fast instead of piling up behind the pool.
      queueLimit: 1_000,
      connectTimeout: CONNECT_TIMEOUT_MS,
      enableKeepAlive: true,
      // DATETIME(6) comes back as the exact 'YYYY-MM-DD HH:MM:SS.ffffff' text; no Date (ms) round trip.
      dateStrings: true,
      timezone: 'Z',
    });
    const db = new Database(pool, cfg, log, options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS);
    try {
      let conn: PoolConnection;
      try {
        conn = await pool.getConnection();
      } catch (err) {
        if (driverCode(err) !== 'ER_BAD_DB_ERROR') throw connectError(where, cfg, err);
        if (cfg.migrate === false) {
          throw new DependencyError('mysql', `MySQL database ${cfg.database} at ${where} does not exist (DATABASE_MIGRATE=off creates nothing)`);
        }
        await createDatabase(cfg, log);
        conn = await pool.getConnection().catch((e: unknown) => {
          throw connectError(where, cfg, e);
        });
      }
      try {
        if (cfg.migrate === false) await checkSchema(conn, cfg, where);
        else await migrate(conn, cfg.database, log);
      } finally {
        conn.release();
      }
    } catch (err) {
      await db.close();
      if (err instanceof DependencyError) throw err;
      const reason = reasonOf(err, cfg);
      throw new DependencyError('mysql', `cannot prepare MySQL database ${cfg.database} at ${where}: ${reason}`, {
        cause: err,
      });
    }
    return db;
  }

  /** True when a query ran out of time, or took half its deadline, within the last two deadlines. */
  get isSlow(): boolean {
    return performance.now() - this.lastSlowAt < 2 * this.queryTimeoutMs;
  }

  async ping(): Promise<void> {
    try {
      await this.query('SELECT 1');
    } catch (err) {
      throw new DependencyError('mysql', `MySQL is unreachable: ${reasonOf(err)}`, { cause: err });
    }
  }

  /**
   * One statement within the query deadline. A statement that runs out of time is killed on the server (KILL
   * QUERY, so an INSERT waiting for a lock does not land after its caller was told it failed) and its connection
   * is dropped rather than returned to the pool mid-command. Driver errors are thrown as they are.
   */
  async query<T extends RowDataPacket[] | ResultSetHeader>(sql: string, params: unknown[] = []): Promise<T> {
    const started = performance.now();
    const conn = await this.acquire();
    const left = Math.max(1, this.queryTimeoutMs - (performance.now() - started));
    try {
      const [rows] = await conn.query<T>({ sql, timeout: left }, params);
      conn.release();
      if (performance.now() - started >= this.queryTimeoutMs / 2) this.lastSlowAt = performance.now();
      return rows;
    } catch (err) {
      if (driverCode(err) !== 'PROTOCOL_SEQUENCE_TIMEOUT') {
        conn.release();
        throw err;
      }
      this.killQuery(conn.threadId);
      conn.destroy();
      throw this.timeoutError();
    }
  }

  private timeoutError(): DependencyError {
    this.lastSlowAt = performance.now();
    return new DependencyError(
      'mysql',
      `MySQL at ${this.cfg.host}:${this.cfg.port} did not answer within ${this.queryTimeoutMs} ms (DATABASE_QUERY_TIMEOUT_MS)`,
    );
  }

  /** A pooled connection, or a timeout error once the deadline passes; a connection that comes later goes back. */
  private acquire(): Promise<PoolConnection> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(this.timeoutError());
      }, this.queryTimeoutMs);
      this.pool.getConnection().then(
        (conn) => {
          if (settled) return conn.release();
          settled = true;
          clearTimeout(timer);
          resolve(conn);
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  /** Best effort, on its own short-lived connection: the pool's may all be the ones waiting. */
  private killQuery(threadId: number): void {
    const { cfg } = this;
    void (async () => {
      const conn = await createConnection({ host: cfg.host, port: cfg.port, user: cfg.user, password: cfg.password, connectTimeout: CONNECT_TIMEOUT_MS });
      try {
        await conn.query(`KILL QUERY ${Number(threadId)}`);
      } finally {
        await conn.end().catch(() => undefined);
      }
    })().catch((err: unknown) => this.log.debug({ err: reasonOf(err, cfg), thread_id: threadId }, 'could not kill a timed-out MySQL query'));
  }

  close(): Promise<void> {
    this.closing ??= this.pool.end().catch(() => undefined);
    return this.closing;
  }
}

/** The driver's error code (ER_DUP_ENTRY, ECONNREFUSED…), if any. */
export function driverCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A driver error as text safe for logs and callers: never the password, never an empty message. */
export function reasonOf(err: unknown, cfg?: Pick<DatabaseConfig, 'password'>): string {
  // Node's happy-eyeballs AggregateError has an empty message but a code.
  const raw = err instanceof Error ? err.message || driverCode(err) || err.name : String(err);
  let text = redactSecrets(raw);
  if (cfg !== undefined && cfg.password !== '') text = text.split(cfg.password).join('***');
  return text;
}

function connectError(where: string, cfg: DatabaseConfig, err: unknown): DependencyError {
  return new DependencyError('mysql', `cannot connect to MySQL at ${where}: ${reasonOf(err, cfg)}`, { cause: err });
}

async function createDatabase(cfg: DatabaseConfig, log: Logger): Promise<void> {
  let conn;
  try {
    conn = await createConnection({
      host: cfg.host,
      port: cfg.port,
      user: cfg.user,
      password: cfg.password,
      connectTimeout: CONNECT_TIMEOUT_MS,
    });
  } catch (err) {
    throw connectError(`${cfg.host}:${cfg.port}`, cfg, err);
  }
  try {
    await conn.query(`CREATE DATABASE IF NOT EXISTS ${escapeId(cfg.database)} CHARACTER SET utf8mb4`);
    log.info({ database: cfg.database }, 'created MySQL database');
  } finally {
    await conn.end().catch(() => undefined);
  }
}

async function migrate(conn: PoolConnection, database: string, log: Logger): Promise<void> {
  const [locked] = await conn.query<RowDataPacket[]>('SELECT GET_LOCK(?, ?) AS locked', [
    MIGRATION_LOCK,
    MIGRATION_LOCK_WAIT_SECONDS,
  ]);
  if (locked[0]?.locked !== 1) {
    throw new DependencyError(
      'mysql',
      `could not take the MySQL migration lock within ${MIGRATION_LOCK_WAIT_SECONDS} s ` +
        '(another instance is still migrating?)',
    );
  }
  try {
    await conn.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
        version int NOT NULL PRIMARY KEY,
        name varchar(255) NOT NULL,
        applied_at datetime(6) NOT NULL
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    );
    const [rows] = await conn.query<RowDataPacket[]>('SELECT version FROM schema_migrations');
    const applied = new Set(rows.map((r) => Number(r.version)));
    for (const m of [...MIGRATIONS].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      for (const sql of m.statements) {
        try {
          await conn.query(sql);
        } catch (err) {
          if (!ALREADY_APPLIED.has(driverCode(err) ?? '')) throw err;
        }
      }
      await conn.query(
        'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, UTC_TIMESTAMP(6))',
        [m.version, m.name],
      );
      log.info({ database, version: m.version, migration: m.name }, 'applied MySQL migration');
    }
  } finally {
    await conn.query('SELECT RELEASE_LOCK(?)', [MIGRATION_LOCK]).catch(() => undefined);
  }
}
