// Validation of a create body (SPEC §5.1): everything is checked before any side effect.

import type { InputLimits } from '../config.js';
import { BadRequestError } from '../errors.js';
import { REFERENCE_TYPES, type ChatMessage, type Pipecatcall } from '../model/pipecatcall.js';
import { TIMESTAMP_NEVER, nowTimestamp } from '../model/timestamp.js';
import { NIL_UUID, newUuid, uuidField } from '../model/uuid.js';
import { parseLlmType, validateSttType, validateTtsType } from '../providers/registry.js';

export interface VadConfig {
  confidence: number;
  start_secs: number;
  stop_secs: number;
  min_volume: number;
  /** Turn-taking (issue 13, README "Turn-taking"); absent: the instance's TURN_* defaults. */
  false_interruption_secs?: number;
  min_stop_secs?: number;
  max_stop_secs?: number;
  preemptive_generation?: boolean;
}

export const DEFAULT_VAD_CONFIG: Readonly<VadConfig> = Object.freeze({
  confidence: 0.7,
  start_secs: 0.2,
  stop_secs: 0.8,
  min_volume: 0.6,
});

export interface CreateRequest {
  id: string;
  customer_id: string;
  activeflow_id: string;
  reference_type: 'call' | 'ai_call';
  reference_id: string;
  llm_type: string;
  llm_messages: ChatMessage[];
  stt_type: string;
  stt_language: string;
  tts_type: string;
  tts_language: string;
  tts_voice_id: string;
  vad_config: VadConfig;
}

function stringField(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new BadRequestError(`${key} must be a string`);
  if (v.length > 255) throw new BadRequestError(`${key} is longer than 255 characters`);
  return v;
}

/** The JSON nesting depth of a parsed value, stopping once past `stopAt` (iterative: no stack to exhaust). */
function valueDepth(value: unknown, stopAt: number): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    if (d > max) {
      max = d;
      if (max > stopAt) return max;
    }
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

function parseMessages(v: unknown, limits?: Pick<InputLimits, 'llmMessagesBytes' | 'llmMessagesDepth'>): ChatMessage[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new BadRequestError('llm_messages must be an array of chat messages');
  if (limits !== undefined) {
    // The messages are stored, cached, published and sent to the LLM: their size is bounded before any of it.
    if (valueDepth(v, limits.llmMessagesDepth) > limits.llmMessagesDepth) {
      throw new BadRequestError(`llm_messages nests deeper than ${limits.llmMessagesDepth} levels (LLM_MESSAGES_MAX_DEPTH)`);
    }
    const bytes = Buffer.byteLength(JSON.stringify(v));
    if (bytes > limits.llmMessagesBytes) {
      throw new BadRequestError(`llm_messages is ${bytes} bytes of JSON, more than ${limits.llmMessagesBytes} (LLM_MESSAGES_MAX_BYTES)`);
    }
  }
  return v.map((m: unknown, i) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      throw new BadRequestError(`llm_messages[${i}] must be an object`);
    }
    const role = (m as Record<string, unknown>).role;
    if (typeof role !== 'string' || !['system', 'developer', 'user', 'assistant', 'tool', 'function', ''].includes(role)) {
      throw new BadRequestError(`llm_messages[${i}].role must be system, developer, user, assistant, tool, function or ""`);
    }
    return m as ChatMessage;
  });
}

function parseVadConfig(v: unknown): VadConfig {
  if (v === undefined || v === null) return { ...DEFAULT_VAD_CONFIG };
  if (typeof v !== 'object' || Array.isArray(v)) throw new BadRequestError('vad_config must be an object');
  const o = v as Record<string, unknown>;
  const num = (key: 'confidence' | 'start_secs' | 'stop_secs' | 'min_volume', min: number, max: number): number => {
    const x = o[key];
    if (x === undefined || x === null) return DEFAULT_VAD_CONFIG[key];
    if (typeof x !== 'number' || !Number.isFinite(x) || x < min || x > max) {
      throw new BadRequestError(`vad_config.${key} must be a number from ${min} to ${max}`);
    }
    return x;
  };
  const out: VadConfig = {
    confidence: num('confidence', 0, 1),
    start_secs: num('start_secs', 0, 5),
    stop_secs: num('stop_secs', 0, 10),
    min_volume: num('min_volume', 0, 1),
  };
  for (const key of ['false_interruption_secs', 'min_stop_secs', 'max_stop_secs'] as const) {
    const x = o[key];
    if (x === undefined || x === null) continue;
    if (typeof x !== 'number' || !Number.isFinite(x) || x < 0 || x > 10) {
      throw new BadRequestError(`vad_config.${key} must be a number from 0 to 10`);
    }
    out[key] = x;
  }
  const pre = o.preemptive_generation;
  if (pre !== undefined && pre !== null) {
    if (typeof pre !== 'boolean') throw new BadRequestError('vad_config.preemptive_generation must be true or false');
    out.preemptive_generation = pre;
  }
  return out;
}

/** Parses and validates a create body; `defaultLlmType` fills an absent llm_type. */
export function parseCreateRequest(data: unknown, defaultLlmType: string, limits?: InputLimits): CreateRequest {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new BadRequestError('the create body must be a JSON object');
  }
  const o = data as Record<string, unknown>;
  let id = uuidField(o.id, 'id');
  if (id === NIL_UUID) id = newUuid();
  const referenceType = stringField(o, 'reference_type');
  if (!REFERENCE_TYPES.includes(referenceType)) {
    throw new BadRequestError(`reference_type must be one of ${REFERENCE_TYPES.join(', ')}, got ${JSON.stringify(referenceType)}`);
  }
  const llmType = stringField(o, 'llm_type') || defaultLlmType;
  if (llmType === '') throw new BadRequestError('llm_type is required: this instance has no DEFAULT_LLM_TYPE');
  parseLlmType(llmType);
  const sttType = stringField(o, 'stt_type');
  validateSttType(sttType);
  const ttsType = stringField(o, 'tts_type');
  validateTtsType(ttsType);
  return {
    id,
    customer_id: uuidField(o.customer_id, 'customer_id'),
    activeflow_id: uuidField(o.activeflow_id, 'activeflow_id'),
    reference_type: referenceType as 'call' | 'ai_call',
    reference_id: uuidField(o.reference_id, 'reference_id'),
    llm_type: llmType,
    llm_messages: parseMessages(o.llm_messages, limits),
    stt_type: sttType,
    stt_language: stringField(o, 'stt_language'),
    tts_type: ttsType,
    tts_language: stringField(o, 'tts_language'),
    tts_voice_id: stringField(o, 'tts_voice_id'),
    vad_config: parseVadConfig(o.vad_config),
  };
}

/** The row a create request makes on host `hostId` (SPEC §6.1). */
export function rowOfRequest(req: CreateRequest, hostId: string): Pipecatcall {
  const now = nowTimestamp();
  return {
    id: req.id,
    customer_id: req.customer_id,
    activeflow_id: req.activeflow_id,
    reference_type: req.reference_type,
    reference_id: req.reference_id,
    host_id: hostId,
    llm_type: req.llm_type,
    llm_messages: req.llm_messages,
    stt_type: req.stt_type,
    stt_language: req.stt_language,
    tts_type: req.tts_type,
    tts_language: req.tts_language,
    tts_voice_id: req.tts_voice_id,
    tm_create: now,
    tm_update: TIMESTAMP_NEVER,
    tm_delete: TIMESTAMP_NEVER,
  };
}
