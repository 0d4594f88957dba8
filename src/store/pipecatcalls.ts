// Rows of pipecat_pipecatcalls (SPEC §6.2) to and from Pipecatcall records: UUIDs as 16 bytes, llm_messages as
// JSON text, timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff'. Driver errors become ConflictError or DependencyError.

import type { ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { ConflictError, DependencyError } from '../errors.js';
import type { ChatMessage, Pipecatcall } from '../model/pipecatcall.js';
import { TIMESTAMP_NEVER, nowTimestamp } from '../model/timestamp.js';
import { NIL_UUID, uuidFromBytes, uuidToBytes } from '../model/uuid.js';
import { driverCode, reasonOf, type Database } from './mysql.js';

const COLUMNS =
  'id, customer_id, activeflow_id, reference_type, reference_id, host_id, llm_type, llm_messages, stt_type, ' +
  'stt_language, tts_type, tts_language, tts_voice_id, tm_create, tm_update, tm_delete';

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

  private async select(what: string, where: string, params: unknown[]): Promise<Pipecatcall[]> {
    try {
      const sql = `SELECT ${COLUMNS} FROM pipecat_pipecatcalls ${where}`;
      const rows = await this.db.query<RowDataPacket[]>(sql, params);
      return rows.map(fromRow);
    } catch (err) {
      throw dependencyError(what, err);
    }
  }
}

function dependencyError(what: string, err: unknown): DependencyError {
  return new DependencyError('mysql', `MySQL failed to ${what}: ${reasonOf(err)}`, { cause: err });
}

function fromRow(r: RowDataPacket): Pipecatcall {
  return {
    id: uuid(r.id),
    customer_id: uuid(r.customer_id),
    activeflow_id: uuid(r.activeflow_id),
    reference_type: text(r.reference_type),
    reference_id: uuid(r.reference_id),
    host_id: text(r.host_id),
    llm_type: text(r.llm_type),
    llm_messages: messages(r.llm_messages),
    stt_type: text(r.stt_type),
    stt_language: text(r.stt_language),
    tts_type: text(r.tts_type),
    tts_language: text(r.tts_language),
    tts_voice_id: text(r.tts_voice_id),
    tm_create: timestamp(r.tm_create),
    tm_update: timestamp(r.tm_update),
    tm_delete: timestamp(r.tm_delete),
  };
}

function uuid(v: unknown): string {
  return v instanceof Uint8Array && v.length === 16 ? uuidFromBytes(v) : NIL_UUID;
}

function text(v: unknown): string {
  if (typeof v === 'string') return v;
  return v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : '';
}

// MariaDB's JSON is LONGTEXT (a string here); MySQL 8's native JSON arrives already parsed.
function messages(v: unknown): ChatMessage[] {
  let parsed: unknown = v;
  if (typeof v === 'string' || v instanceof Uint8Array) {
    try {
      parsed = JSON.parse(text(v));
    } catch {
      return [];
    }
  }
  return Array.isArray(parsed) ? (parsed as ChatMessage[]) : [];
}

// dateStrings gives DATETIME(6) as text already; pad in case a column was declared with less precision.
function timestamp(v: unknown): string {
  if (typeof v !== 'string' || v === '') return '';
  const [whole = '', frac = ''] = v.split('.');
  return `${whole}.${frac.padEnd(6, '0').slice(0, 6)}`;
}
