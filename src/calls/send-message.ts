// The body of POST /v1/messages (SPEC §3.7), parsed and validated, and the Message (§7.2) a call's text becomes.

import { BadRequestError } from '../errors.js';
import type { Message } from '../model/message.js';
import { isNilUuid, newUuid, uuidField } from '../model/uuid.js';
import type { Call } from './call.js';

export interface SendMessageRequest {
  pipecatcallId: string;
  messageId: string;
  text: string;
  runImmediately: boolean;
  audioResponse: boolean;
}

export function parseSendMessage(data: unknown): SendMessageRequest {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new BadRequestError('the message body must be a JSON object');
  }
  const o = data as Record<string, unknown>;
  const id = uuidField(o.pipecatcall_id, 'pipecatcall_id');
  if (isNilUuid(id)) throw new BadRequestError('pipecatcall_id is required');
  const text = o.message_text;
  if (typeof text !== 'string' || text.trim() === '') throw new BadRequestError('message_text must be a non-empty string');
  const bool = (k: string): boolean => {
    const v = o[k];
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') throw new BadRequestError(`${k} must be a boolean`);
    return v;
  };
  const messageId = o.message_id;
  if (messageId !== undefined && messageId !== null && typeof messageId !== 'string') {
    throw new BadRequestError('message_id must be a string');
  }
  return {
    pipecatcallId: id,
    messageId: typeof messageId === 'string' ? messageId : '',
    text,
    runImmediately: bool('run_immediately'),
    audioResponse: bool('audio_response'),
  };
}

/** A Message of a call (SPEC §7.2), with a new id. */
export function messageOfCall(call: Call, text: string): Message {
  const r = call.row;
  return {
    id: newUuid(),
    customer_id: r.customer_id,
    pipecatcall_id: call.id,
    pipecatcall_reference_type: r.reference_type,
    pipecatcall_reference_id: r.reference_id,
    text,
  };
}
