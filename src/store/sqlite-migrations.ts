// The embedded store's schema (SPEC §6.2 mapped onto SQLite) as versioned migrations, the same idea as the MySQL
// ones in migrations.ts: applied in order at startup, each recorded in schema_migrations and never re-run.

import type { Migration } from './migrations.js';

// SQLite has no binary(16)/datetime(6)/json types: UUIDs stay 16-byte BLOBs in textual order, timestamps the exact
// 'YYYY-MM-DD HH:MM:SS.ffffff' text (which sorts like the time it names), llm_messages the JSON text.
export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'create pipecat_pipecatcalls',
    statements: [
      `CREATE TABLE IF NOT EXISTS pipecat_pipecatcalls (
        id BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
        customer_id BLOB,
        activeflow_id BLOB,
        reference_type TEXT,
        reference_id BLOB,
        host_id TEXT,
        llm_type TEXT,
        llm_messages TEXT CHECK (llm_messages IS NULL OR json_valid(llm_messages)),
        stt_type TEXT,
        stt_language TEXT,
        tts_type TEXT,
        tts_language TEXT,
        tts_voice_id TEXT,
        tm_create TEXT,
        tm_update TEXT,
        tm_delete TEXT
      ) WITHOUT ROWID`,
      'CREATE INDEX IF NOT EXISTS idx_pipecat_pipecatcalls_customer_id ON pipecat_pipecatcalls (customer_id)',
      'CREATE INDEX IF NOT EXISTS idx_pipecat_pipecatcalls_activeflow_id ON pipecat_pipecatcalls (activeflow_id)',
      'CREATE INDEX IF NOT EXISTS idx_pipecat_pipecatcalls_reference_type ON pipecat_pipecatcalls (reference_type)',
      'CREATE INDEX IF NOT EXISTS idx_pipecat_pipecatcalls_reference_id ON pipecat_pipecatcalls (reference_id)',
      'CREATE INDEX IF NOT EXISTS idx_pipecat_pipecatcalls_host_id ON pipecat_pipecatcalls (host_id)',
      'CREATE INDEX IF NOT EXISTS idx_pipecat_pipecatcalls_tm_create ON pipecat_pipecatcalls (tm_create)',
    ],
  },
  {
    version: 2,
    name: 'index live calls by host',
    statements: [
      'CREATE INDEX IF NOT EXISTS idx_pipecat_pipecatcalls_host_id_tm_delete ON pipecat_pipecatcalls (host_id, tm_delete)',
    ],
  },
];
