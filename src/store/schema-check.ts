// DATABASE_MIGRATE=off (a database user without DDL rights): instead of migrating, check that the table and
// every column the daemon needs exist with a usable type, and say exactly what is missing before serving anything.

import type { RowDataPacket } from 'mysql2/promise';
import type { DatabaseConfig } from '../config.js';
import { DependencyError } from '../errors.js';
import { PIPECATCALLS_COLUMNS, PIPECATCALLS_TABLE, type ColumnKind } from './migrations.js';

interface Queryable {
  query<T extends RowDataPacket[]>(sql: string, values?: unknown[]): Promise<[T, unknown]>;
}

interface ColumnRow extends RowDataPacket {
  name: string;
  dataType: string;
  columnType: string;
  precision: number | null;
}

const NEEDS: Record<ColumnKind, string> = {
  uuid: 'binary(16)',
  text: 'varchar(255)',
  json: 'json',
  timestamp: 'datetime(6)',
};

function fits(kind: ColumnKind, c: ColumnRow): boolean {
  const dataType = c.dataType.toLowerCase();
  switch (kind) {
    case 'uuid':
      // UUIDs are stored as their 16 bytes; any other width would truncate or pad them.
      return c.columnType.toLowerCase() === 'binary(16)';
    case 'text':
      return ['varchar', 'char', 'text', 'mediumtext', 'longtext'].includes(dataType);
    case 'json':
      // MariaDB's JSON is an alias of LONGTEXT (with a json_valid check), and information_schema says so.
      return dataType === 'json' || dataType === 'longtext';
    case 'timestamp':
      // The wire format carries 6 fractional digits (SPEC §6.1); a coarser column would lose them.
      return dataType === 'datetime' && c.precision === 6;
  }
}

/**
 * The problems with `database`'s schema, as sentences; empty when the daemon can use it. A table the user may
 * not see is reported as missing (information_schema lists only what the user has rights on).
 */
export async function schemaProblems(conn: Queryable, database: string): Promise<string[]> {
  const [rows] = await conn.query<ColumnRow[]>(
    'SELECT COLUMN_NAME AS name, DATA_TYPE AS dataType, COLUMN_TYPE AS columnType, DATETIME_PRECISION AS `precision` ' +
      'FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
    [database, PIPECATCALLS_TABLE],
  );
  if (rows.length === 0) return [`table ${PIPECATCALLS_TABLE} is missing (or this user has no rights on it)`];
  const byName = new Map(rows.map((r) => [r.name.toLowerCase(), r]));
  const missing: string[] = [];
  const wrong: string[] = [];
  for (const [name, kind] of PIPECATCALLS_COLUMNS) {
    const column = byName.get(name);
    if (column === undefined) missing.push(`${name} ${NEEDS[kind]}`);
    else if (!fits(kind, column)) wrong.push(`${name} is ${column.columnType}, needs ${NEEDS[kind]}`);
  }
  const problems: string[] = [];
  if (missing.length > 0) problems.push(`${PIPECATCALLS_TABLE} lacks the column(s) ${missing.join(', ')}`);
  if (wrong.length > 0) problems.push(`${PIPECATCALLS_TABLE}: ${wrong.join('; ')}`);
  return problems;
}

/** Throws a DependencyError naming every problem when the schema is not usable. */
export async function checkSchema(conn: Queryable, cfg: DatabaseConfig, where: string): Promise<void> {
  const problems = await schemaProblems(conn, cfg.database);
  if (problems.length === 0) return;
  throw new DependencyError(
    'mysql',
    `MySQL database ${cfg.database} at ${where} is not ready and DATABASE_MIGRATE=off applies no DDL: ${problems.join('; ')} ` +
      '(run the daemon once with DATABASE_MIGRATE=on as a user with DDL rights, or apply the migrations by hand)',
  );
}
