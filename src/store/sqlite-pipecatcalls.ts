// Rows of the embedded store's pipecat_pipecatcalls to and from Pipecatcall records, with the MySQL repository's
// contract (PipecatcallRows): same sentinels, same nil UUIDs, same JSON out; a duplicate id is a ConflictError.

import type { Statement } from 'better-sqlite3';
import { BadRequestError, ConflictError, DependencyError, messageOf } from '../errors.js';
import type { Pipecatcall } from '../model/pipecatcall.js';
import { TIMESTAMP_NEVER, nowTimestamp } from '../model/timestamp.js';
import { uuidToBytes } from '../model/uuid.js';
import { endedWhere, type EndedQuery, type PipecatcallRows } from './pipecatcall-store.js';
import { PIPECATCALL_COLUMNS, pipecatcallFromRow } from './pipecatcall-row.js';
import type { SqliteDatabase } from './sqlite.js';

const COLUMNS = PIPECATCALL_COLUMNS;

type Row = Record<string, unknown>;

export class SqlitePipecatcallRepository implements PipecatcallRows {
  private readonly insertStmt: Statement;
  private readonly getStmt: Statement;
  private readonly markDeletedStmt: Statement;
  private readonly liveByHostStmt: Statement;
  /** listEnded's statements by WHERE clause (at most 16: four optional filters). */
  private readonly endedStmts = new Map<string, Statement>();

  constructor(private readonly db: SqliteDatabase) {
    const h = db.handle;
    this.insertStmt = h.prepare(`INSERT INTO pipecat_pipecatcalls (${COLUMNS}) VALUES (${COLUMNS.split(',').map(() => '?').join(', ')})`);
    this.getStmt = h.prepare(`SELECT ${COLUMNS} FROM pipecat_pipecatcalls WHERE id = ?`);
    this.markDeletedStmt = h.prepare(
      'UPDATE pipecat_pipecatcalls SET tm_update = ?, tm_delete = ? WHERE id = ? AND tm_delete = ?',
    );
    this.liveByHostStmt = h.prepare(
      `SELECT ${COLUMNS} FROM pipecat_pipecatcalls WHERE host_id = ? AND tm_delete = ? ORDER BY tm_create, id`,
    );
  }

  /** Inserts a new row; tm_update and tm_delete start at the "never" sentinel, tm_create defaults to now. */
  insert(p: Pipecatcall): Promise<void> {
    return this.run(`insert pipecatcall ${p.id}`, () => {
      try {
        this.insertStmt.run(
          uuidToBytes(p.id),
          uuidToBytes(p.customer_id),
          uuidToBytes(p.activeflow_id),
          p.reference_type,
          uuidToBytes(p.reference_id),
          p.host_id,
          p.llm_type,
          JSON.stringify(p.llm_messages),
          p.stt_type,
          p.stt_language,
          p.tts_type,
          p.tts_language,
          p.tts_voice_id,
          p.tm_create || nowTimestamp(),
          TIMESTAMP_NEVER,
          TIMESTAMP_NEVER,
        );
      } catch (err) {
        if (sqliteCode(err) === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new ConflictError(`pipecatcall ${p.id} already exists`);
        throw err;
      }
    });
  }

  get(id: string): Promise<Pipecatcall | null> {
    return this.run(`get pipecatcall ${id}`, () => {
      const row = this.getStmt.get(uuidToBytes(id)) as Row | undefined;
      return row === undefined ? null : pipecatcallFromRow(row);
    });
  }

  /** Marks a live row deleted at ts; false when there is no such row or it was already deleted. */
  markDeleted(id: string, ts: string): Promise<boolean> {
    return this.run(`mark pipecatcall ${id} deleted`, () => {
      return this.markDeletedStmt.run(ts, ts, uuidToBytes(id), TIMESTAMP_NEVER).changes > 0;
    });
  }

  /** The rows on this host that are not deleted yet, oldest first. */
  listLiveByHost(hostId: string): Promise<Pipecatcall[]> {
    return this.run(`list live pipecatcalls of host ${hostId}`, () => {
      return (this.liveByHostStmt.all(hostId, TIMESTAMP_NEVER) as Row[]).map(pipecatcallFromRow);
    });
  }

  /** Ended rows, newest first (keyset paged); the statement is cached per filter combination. */
  listEnded(q: EndedQuery): Promise<Pipecatcall[]> {
    return this.run('list ended pipecatcalls', () => {
      const { where, params } = endedWhere(q, uuidToBytes, TIMESTAMP_NEVER);
      let stmt = this.endedStmts.get(where);
      if (stmt === undefined) {
        stmt = this.db.handle.prepare(`SELECT ${COLUMNS} FROM pipecat_pipecatcalls ${where}`);
        this.endedStmts.set(where, stmt);
      }
      return (stmt.all(...params) as Row[]).map(pipecatcallFromRow);
    });
  }

  // better-sqlite3 is synchronous (microseconds per statement on this table); the Promise keeps the contract
  // of the MySQL repository, and a driver failure becomes a rejection, never a throw out of a caller's loop.
  private run<T>(what: string, fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (err) {
      if (err instanceof ConflictError || err instanceof BadRequestError) return Promise.reject(err);
      return Promise.reject(
        new DependencyError('sqlite', `SQLite (${this.db.path}) failed to ${what}: ${messageOf(err)}`, { cause: err }),
      );
    }
  }
}

function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
