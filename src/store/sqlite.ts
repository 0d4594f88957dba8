// The embedded SQLite database used when no DATABASE_DSN is configured: one file (created with its directory),
// WAL journal, migrations applied in one transaction at startup. better-sqlite3 is loaded only in this mode.

import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { DependencyError, messageOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { Migration } from './migrations.js';
import { SQLITE_MIGRATIONS } from './sqlite-migrations.js';

export type SqliteHandle = BetterSqlite3.Database;

/** How long a statement waits for a lock held by another connection (e.g. an operator's sqlite3 shell). */
const BUSY_TIMEOUT_MS = 5_000;

export class SqliteDatabase {
  private closed = false;

  private constructor(
    readonly handle: SqliteHandle,
    readonly path: string,
    private readonly owner: SqliteHandle | null,
  ) {}

  /** Opens (creating if needed) the file and migrates it; a DependencyError naming the path if that fails. */
  static open(path: string, log: Logger, migrations: readonly Migration[] = SQLITE_MIGRATIONS): SqliteDatabase {
    let handle: SqliteHandle;
    let owner: SqliteHandle | null = null;
    try {
      const Database = loadDriver();
      if (path !== ':memory:') {
        mkdirSync(dirname(path), { recursive: true });
        owner = takeOwnership(Database, path);
      }
      handle = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    } catch (err) {
      owner?.close();
      if (err instanceof DependencyError) throw err;
      throw new DependencyError('sqlite', `cannot open the SQLite database ${path}: ${messageOf(err)}`, { cause: err });
    }
    const db = new SqliteDatabase(handle, path, owner);
    try {
      // WAL: readers never wait for the writer; NORMAL sync is durable across a process crash (kill -9), which
      // is the failure this embedded mode has to survive; only an OS crash may lose the last commits.
      handle.pragma('journal_mode = WAL');
      handle.pragma('synchronous = NORMAL');
      migrate(handle, path, migrations, log);
    } catch (err) {
      db.close();
      if (err instanceof DependencyError) throw err;
      throw new DependencyError('sqlite', `cannot prepare the SQLite database ${path}: ${messageOf(err)}`, {
        cause: err,
      });
    }
    return db;
  }

  ping(): Promise<void> {
    try {
      this.handle.prepare('SELECT 1').get();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(
        new DependencyError('sqlite', `SQLite database ${this.path} is unusable: ${messageOf(err)}`, { cause: err }),
      );
    }
  }

  /** Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const h of [this.handle, this.owner]) {
      try {
        h?.close();
      } catch {
        // already unusable: nothing left to release
      }
    }
  }
}

/**
 * One daemon per file: startup ends the rows its host left live, which would end another running daemon's calls.
 * An exclusive SQLite lock on `<path>.lock`, held for the life of the connection, is released by the OS when the
 * process dies however it dies (kill -9 included), so a restart never finds a stale lock. Readers of the
 * database itself (an operator's sqlite3 shell) are not affected.
 */
function takeOwnership(Database: typeof BetterSqlite3, path: string): SqliteHandle {
  const lockPath = `${path}.lock`;
  const owner = new Database(lockPath, { timeout: 0 });
  try {
    owner.pragma('locking_mode = EXCLUSIVE');
    owner.exec('CREATE TABLE IF NOT EXISTS owner (pid INTEGER NOT NULL)');
    owner.prepare('DELETE FROM owner').run();
    owner.prepare('INSERT INTO owner (pid) VALUES (?)').run(process.pid);
  } catch (err) {
    owner.close();
    if ((err as { code?: unknown }).code === 'SQLITE_BUSY') {
      throw new DependencyError(
        'sqlite',
        `the SQLite database ${path} is in use by another pipecat-manager (lock ${lockPath}); stop it or set another DATABASE_PATH`,
        { cause: err },
      );
    }
    throw err;
  }
  return owner;
}

// A native addon: required lazily so a deployment on MySQL never needs it to load (or even to have built).
function loadDriver(): typeof BetterSqlite3 {
  const require = createRequire(import.meta.url);
  try {
    return require('better-sqlite3') as typeof BetterSqlite3;
  } catch (err) {
    throw new Error(
      `the better-sqlite3 module could not be loaded (${messageOf(err)}); run npm ci, or set DATABASE_DSN to use MySQL`,
      { cause: err },
    );
  }
}

function migrate(handle: SqliteHandle, path: string, migrations: readonly Migration[], log: Logger): void {
  handle.exec(
    `CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER NOT NULL PRIMARY KEY,
      name TEXT NOT NULL,
      applied_at TEXT NOT NULL
    )`,
  );
  // IMMEDIATE takes the write lock first, so two processes opening one file cannot both apply a version; and
  // SQLite's DDL is transactional, so a version is applied and recorded together or not at all.
  const apply = handle.transaction(() => {
    const applied = new Set(
      (handle.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map((r) =>
        Number(r.version),
      ),
    );
    const done: Migration[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      for (const sql of m.statements) handle.exec(sql);
      handle
        .prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, strftime('%Y-%m-%d %H:%M:%f', 'now'))")
        .run(m.version, m.name);
      done.push(m);
    }
    return done;
  });
  for (const m of apply.immediate()) {
    log.info({ database: path, version: m.version, migration: m.name }, 'applied SQLite migration');
  }
}
