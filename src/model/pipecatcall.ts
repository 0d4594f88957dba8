// The Pipecatcall record (SPEC §6.1): its type, its Go-compatible JSON and the validation of a create body.

import { goEncodeStruct } from './go-json.js';

/** An OpenAI chat message as stored in llm_messages: kept as given (tool calls included). */
export type ChatMessage = Record<string, unknown> & { role: string };

export type ReferenceType = 'call' | 'ai_call';
export const REFERENCE_TYPES: readonly string[] = ['call', 'ai_call'];

/** A pipecatcall row. Field names are the wire names so nothing is lost in translation. */
export interface Pipecatcall {
  id: string;
  customer_id: string;
  activeflow_id: string;
  reference_type: string;
  reference_id: string;
  host_id: string;
  llm_type: string;
  llm_messages: ChatMessage[];
  stt_type: string;
  stt_language: string;
  tts_type: string;
  tts_language: string;
  tts_voice_id: string;
  tm_create: string;
  tm_update: string;
  tm_delete: string;
}

/** The Pipecatcall JSON exactly as the old Go service encoded it (key order, omitempty, nil UUIDs present). */
export function encodePipecatcall(p: Pipecatcall): string {
  return goEncodeStruct([
    ['id', p.id],
    ['customer_id', p.customer_id],
    ['activeflow_id', p.activeflow_id],
    ['reference_type', p.reference_type, true],
    ['reference_id', p.reference_id],
    ['host_id', p.host_id, true],
    ['llm_type', p.llm_type, true],
    ['llm_messages', p.llm_messages, true],
    ['stt_type', p.stt_type, true],
    ['stt_language', p.stt_language, true],
    ['tts_type', p.tts_type, true],
    ['tts_language', p.tts_language, true],
    ['tts_voice_id', p.tts_voice_id, true],
    ['tm_create', p.tm_create, true],
    ['tm_update', p.tm_update, true],
    ['tm_delete', p.tm_delete, true],
  ]);
}

/** Parses the Pipecatcall JSON (from the cache or a peer) back into the record; null if it is not one. */
export function decodePipecatcall(json: string): Pipecatcall | null {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.id !== 'string') return null;
  const s = (k: string): string => (typeof o[k] === 'string' ? (o[k]) : '');
  return {
    id: o.id,
    customer_id: s('customer_id'),
    activeflow_id: s('activeflow_id'),
    reference_type: s('reference_type'),
    reference_id: s('reference_id'),
    host_id: s('host_id'),
    llm_type: s('llm_type'),
    llm_messages: Array.isArray(o.llm_messages) ? (o.llm_messages as ChatMessage[]) : [],
    stt_type: s('stt_type'),
    stt_language: s('stt_language'),
    tts_type: s('tts_type'),
    tts_language: s('tts_language'),
    tts_voice_id: s('tts_voice_id'),
    tm_create: s('tm_create'),
    tm_update: s('tm_update'),
    tm_delete: s('tm_delete'),
  };
}

export function isTerminated(p: Pipecatcall): boolean {
  return p.tm_delete !== '' && !p.tm_delete.startsWith('9999-');
}
