// The MySQL schema as versioned migrations (SPEC §6.2), applied in order at startup by Database.open, and the
// columns the code relies on, checked instead when DATABASE_MIGRATE=off. Append new versions; never edit one
// that has shipped, since applied versions are recorded and not re-run. A version that adds a column the code
// reads adds it to PIPECATCALLS_COLUMNS too.

export interface Migration {
  version: number;
  name: string;
  /** Run one by one (no multi-statement queries); DDL commits implicitly, so keep each version small. */
  statements: string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'create pipecat_pipecatcalls',
    statements: [
      `CREATE TABLE IF NOT EXISTS pipecat_pipecatcalls (
        id binary(16) NOT NULL,
        customer_id binary(16),
        activeflow_id binary(16),
        reference_type varchar(255),
        reference_id binary(16),
        host_id varchar(255),
        llm_type varchar(255),
        llm_messages json,
        stt_type varchar(255),
        stt_language varchar(255),
        tts_type varchar(255),
        tts_language varchar(255),
        tts_voice_id varchar(255),
        tm_create datetime(6),
        tm_update datetime(6),
        tm_delete datetime(6),
        PRIMARY KEY (id),
        INDEX idx_pipecat_pipecatcalls_customer_id (customer_id),
        INDEX idx_pipecat_pipecatcalls_activeflow_id (activeflow_id),
        INDEX idx_pipecat_pipecatcalls_reference_type (reference_type),
        INDEX idx_pipecat_pipecatcalls_reference_id (reference_id),
        INDEX idx_pipecat_pipecatcalls_host_id (host_id),
        INDEX idx_pipecat_pipecatcalls_tm_create (tm_create)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    ],
  },
  {
    version: 2,
    name: 'index live calls by host',
    // "Live calls on this host" (startup recovery, shutdown) filters on host_id and the tm_delete sentinel.
    statements: [
      'CREATE INDEX idx_pipecat_pipecatcalls_host_id_tm_delete ON pipecat_pipecatcalls (host_id, tm_delete)',
    ],
  },
];

/** How a column must look for the code to work with it (checked by schema-check.ts). */
export type ColumnKind = 'uuid' | 'text' | 'json' | 'timestamp';

export const PIPECATCALLS_TABLE = 'pipecat_pipecatcalls';

/** Every column the daemon reads or writes, with what its SQL type must be (SPEC §6.2). */
export const PIPECATCALLS_COLUMNS: ReadonlyArray<readonly [name: string, kind: ColumnKind]> = [
  ['id', 'uuid'],
  ['customer_id', 'uuid'],
  ['activeflow_id', 'uuid'],
  ['reference_type', 'text'],
  ['reference_id', 'uuid'],
  ['host_id', 'text'],
  ['llm_type', 'text'],
  ['llm_messages', 'json'],
  ['stt_type', 'text'],
  ['stt_language', 'text'],
  ['tts_type', 'text'],
  ['tts_language', 'text'],
  ['tts_voice_id', 'text'],
  ['tm_create', 'timestamp'],
  ['tm_update', 'timestamp'],
  ['tm_delete', 'timestamp'],
];
