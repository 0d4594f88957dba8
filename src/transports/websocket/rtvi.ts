// RTVI-style JSON messages carried in `message` frames (SPEC §9): what the server sends
// ({"label":"rtvi-ai","type":…,"data":…}) and what it accepts from clients (send-text, client-ready).

import { ProtocolError } from '../../errors.js';

export const RTVI_LABEL = 'rtvi-ai';
/** Reported to clients in bot-ready: the RTVI protocol version these messages follow. */
export const RTVI_VERSION = '1.0.0';

/** The JSON of one server message; `data`/`id` are left out when undefined (e.g. bot-started-speaking). */
export function rtviMessage(type: string, data?: unknown, id?: string): string {
  return JSON.stringify({ label: RTVI_LABEL, type, id, data });
}

/** An `error` message: a problem with the connection or a frame, not tied to one request. */
export function rtviError(message: string): string {
  return rtviMessage('error', { message });
}

/** An `error-response`: the answer to one client request (`id` when the request had one). */
export function rtviErrorResponse(id: string | undefined, error: string): string {
  return rtviMessage('error-response', { error }, id);
}

export type ClientMessage =
  | {
      type: 'send-text';
      id: string | undefined;
      content: string;
      runImmediately: boolean;
      audioResponse: boolean;
    }
  | { type: 'client-ready'; id: string | undefined }
  | { type: 'other'; name: string; id: string | undefined };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses a client `message` frame's JSON. Malformed JSON, a non-object or a foreign label is a ProtocolError
 * (answered with `error`); a well-formed request with bad fields is returned for an `error-response` instead.
 */
export function parseClientMessage(json: string): ClientMessage {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw new ProtocolError('message', 'the message frame is not valid JSON');
  }
  if (!isObject(doc)) throw new ProtocolError('message', 'the message frame must hold a JSON object');
  if (doc['label'] !== RTVI_LABEL) throw new ProtocolError('message', `the message label must be "${RTVI_LABEL}"`);
  const type = doc['type'];
  if (typeof type !== 'string' || type === '') throw new ProtocolError('message', 'the message has no type');
  const rawId = doc['id'];
  const id = typeof rawId === 'string' && rawId !== '' ? rawId : typeof rawId === 'number' ? String(rawId) : undefined;
  if (type === 'client-ready') return { type, id };
  if (type !== 'send-text') return { type: 'other', name: type, id };
  const data = isObject(doc['data']) ? doc['data'] : {};
  const options = isObject(data['options']) ? data['options'] : {};
  // RTVI's own defaults when an option is absent: run now, answer with audio.
  const flag = (v: unknown): boolean => (typeof v === 'boolean' ? v : true);
  return {
    type,
    id,
    content: typeof data['content'] === 'string' ? data['content'] : '',
    runImmediately: flag(options['run_immediately']),
    audioResponse: flag(options['audio_response']),
  };
}
