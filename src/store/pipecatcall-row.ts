// One row of pipecat_pipecatcalls (SPEC §6.2) as a Pipecatcall, for both stores: UUIDs from 16 bytes, llm_messages
// from JSON (text, bytes, or MySQL 8's parsed JSON), timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff'.

import type { ChatMessage, Pipecatcall } from '../model/pipecatcall.js';
import { NIL_UUID, uuidFromBytes } from '../model/uuid.js';

export const PIPECATCALL_COLUMNS =
  'id, customer_id, activeflow_id, reference_type, reference_id, host_id, llm_type, llm_messages, stt_type, ' +
  'stt_language, tts_type, tts_language, tts_voice_id, tm_create, tm_update, tm_delete';

export function pipecatcallFromRow(r: Record<string, unknown>): Pipecatcall {
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
