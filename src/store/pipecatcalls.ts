// Rows of pipecat_pipecatcalls (SPEC §6.2) to and from Pipecatcall records: UUIDs as 16 bytes, llm_messages as
// JSON text, timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff'. Driver errors become ConflictError or DependencyError.

import type { ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { ConflictError, DependencyError } from '../errors.js';
import type { Pipecatcall } from '../model/pipecatcall.js';
import { TIMESTAMP_NEVER, nowTimestamp } from '../model/timestamp.js';
import { uuidToBytes } from '../model/uuid.js';
import { driverCode, reasonOf, type Database } from './mysql.js';
import { PIPECATCALL_COLUMNS, pipecatcallFromRow } from './pipecatcall-row.js';
import { endedWhere, type EndedQuery } from './pipecatcall-store.js';

const COLUMNS = PIPECATCALL_COLUMNS;

export class PipecatcallRepository {
  constructor(private readonly db: Database) {}

  /** Inserts a new row; tm_update and tm_delete start at the "never" sentinel, tm_create defaults to now. */
  async insert(p: Pipecatcall): Promise<void> {
    const values = [
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
    ];
    try {
      await this.db.query<ResultSetHeader>(
        `INSERT INTO pipecat_pipecatcalls (${COLUMNS}) VALUES (${values.map(() => '?').join(', ')})`,
        values,
      );
    } catch (err) {
      if (driverCode(err) === 'ER_DUP_ENTRY') throw new ConflictError(`pipecatcall ${p.id} already exists`);
      throw dependencyError(`insert pipecatcall ${p.id}`, err);
    }
  }

  async get(id: string): Promise<Pipecatcall | null> {
    const rows = await this.select(`get pipecatcall ${id}`, 'WHERE id = ?', [uuidToBytes(id)]);
    return rows[0] ?? null;
  }

  /** Marks a live row deleted at ts; false when there is no such row or it was already deleted. */
  async markDeleted(id: string, ts: string): Promise<boolean> {
    try {
      const res = await this.db.query<ResultSetHeader>(
        'UPDATE pipecat_pipecatcalls SET tm_update = ?, tm_delete = ? WHERE id = ? AND tm_delete = ?',
        [ts, ts, uuidToBytes(id), TIMESTAMP_NEVER],
      );
      return res.affectedRows > 0;
    } catch (err) {
      throw dependencyError(`mark pipecatcall ${id} deleted`, err);
    }
  }

  /** The rows on this host that are not deleted yet, oldest first. */
  listLiveByHost(hostId: string): Promise<Pipecatcall[]> {
    return this.select(
      `list live pipecatcalls of host ${hostId}`,
      'WHERE host_id = ? AND tm_delete = ? ORDER BY tm_create, id',
      [hostId, TIMESTAMP_NEVER],
    );
  }

  /**
   * Ended rows, newest first (keyset paged). Without a filter it walks idx_pipecat_pipecatcalls_tm_create
   * backwards; with one, the primary key or the reference_id / customer_id index narrows it first.
   */
  async listEnded(q: EndedQuery): Promise<Pipecatcall[]> {
    const { where, params } = endedWhere(q, uuidToBytes, TIMESTAMP_NEVER);
    return await this.select('list ended pipecatcalls', where, params);
  }

  private async select(what: string, where: string, params: unknown[]): Promise<Pipecatcall[]> {
    try {
      const sql = `SELECT ${COLUMNS} FROM pipecat_pipecatcalls ${where}`;
      const rows = await this.db.query<RowDataPacket[]>(sql, params);
      return rows.map(pipecatcallFromRow);
    } catch (err) {
      throw dependencyError(what, err);
    }
  }
}

function dependencyError(what: string, err: unknown): DependencyError {
  return new DependencyError('mysql', `MySQL failed to ${what}: ${reasonOf(err)}`, { cause: err });
}

