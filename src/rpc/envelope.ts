// The bin-manager RPC wire envelopes (SPEC §4.1): parse requests/responses, and encode them byte-for-byte the way
// the Go siblings do. Bodies travel as raw JSON text so Go-compatible JSON made elsewhere is embedded verbatim.

import { BadRequestError, ProtocolError } from '../errors.js';
import { goEncodeValue } from '../model/go-json.js';

export const RPC_METHODS = ['POST', 'GET', 'PUT', 'DELETE'] as const;
export type RpcMethod = (typeof RPC_METHODS)[number];

/**
 * A request's method as routed: one of SPEC §4.1's four, or OTHER for anything else. No route takes OTHER, so
 * such a request is a 404 like an unknown URI (SPEC §4.4), and metric labels stay a bounded set.
 */
export type RequestMethod = RpcMethod | 'OTHER';

export interface RpcRequest {
  uri: string;
  method: RequestMethod;
  publisher: string;
  dataType: string;
  /** The embedded JSON body, parsed; undefined when the envelope has no `data`. */
  data: unknown;
}

export interface RpcResponse {
  statusCode: number;
  dataType: string;
  /** Raw JSON text embedded verbatim as `data`; absent → no `data` key. */
  data?: string;
}

const JSON_TYPE = 'application/json';

function parseObject(body: Buffer): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function isMethod(m: string): m is RpcMethod {
  return (RPC_METHODS as readonly string[]).includes(m);
}

/**
 * Parses a request envelope; anything malformed (not a JSON object, `uri` or `method` not a string) is a
 * BadRequestError (RPC 400). An unknown method is well-formed: it is routed, and matches nothing. `request_id` is
 * ignored.
 */
export function parseRequest(body: Buffer): RpcRequest {
  const obj = parseObject(body);
  if (obj === undefined) throw new BadRequestError('request is not a JSON object');
  const { uri, method, publisher, data_type: dataType, data } = obj;
  if (typeof uri !== 'string') throw new BadRequestError('request uri must be a string');
  if (typeof method !== 'string') throw new BadRequestError('request method must be a string');
  return {
    uri,
    method: isMethod(method) ? method : 'OTHER',
    publisher: typeof publisher === 'string' ? publisher : '',
    dataType: typeof dataType === 'string' ? dataType : '',
    data,
  };
}

/** `{"status_code":N,"data_type":"…"[,"data":<raw>]}` — key order and spelling of the Go struct. */
export function encodeResponse(r: RpcResponse): Buffer {
  const data = r.data === undefined ? '' : `,"data":${r.data}`;
  return Buffer.from(`{"status_code":${r.statusCode},"data_type":${goEncodeValue(r.dataType)}${data}}`, 'utf8');
}

export function okJson(raw: string): RpcResponse {
  return { statusCode: 200, dataType: JSON_TYPE, data: raw };
}

/**
 * An error reply. With a message the body is `{"message":"…"}` (callers ignore unknown keys); 400 and 5xx always
 * carry one so the caller learns why, while a bare 404 keeps the old `{"status_code":404,"data_type":""}`.
 */
export function errorResponse(status: number, message?: string): RpcResponse {
  const text = message ?? (status === 400 ? 'bad request' : status >= 500 ? 'internal error' : undefined);
  if (text === undefined) return { statusCode: status, dataType: '' };
  return { statusCode: status, dataType: JSON_TYPE, data: `{"message":${goEncodeValue(text)}}` };
}

export interface OutboundRequest {
  uri: string;
  method: RpcMethod;
  publisher: string;
  /** Defaults to application/json with a body, "" without. */
  dataType?: string;
  /** Raw JSON text. */
  data?: string;
}

/** `{"uri":…,"method":…,"publisher":…,"data_type":…[,"data":<raw>]}` as the Go siblings send it. */
export function encodeRequest(r: OutboundRequest): Buffer {
  const dataType = r.dataType ?? (r.data === undefined ? '' : JSON_TYPE);
  const data = r.data === undefined ? '' : `,"data":${r.data}`;
  return Buffer.from(
    `{"uri":${goEncodeValue(r.uri)},"method":${goEncodeValue(r.method)},"publisher":${goEncodeValue(r.publisher)},` +
      `"data_type":${goEncodeValue(dataType)}${data}}`,
    'utf8',
  );
}

export interface ParsedResponse {
  statusCode: number;
  dataType: string;
  data: unknown;
}

/** Parses a sibling's reply; a malformed one is a ProtocolError (the caller turns it into a dependency failure). */
export function parseResponse(body: Buffer): ParsedResponse {
  const obj = parseObject(body);
  if (obj === undefined) throw new ProtocolError('rpc_response', 'reply is not a JSON object');
  const { status_code: statusCode, data_type: dataType, data } = obj;
  if (typeof statusCode !== 'number' || !Number.isInteger(statusCode)) {
    throw new ProtocolError('rpc_response', 'reply status_code must be an integer');
  }
  return { statusCode, dataType: typeof dataType === 'string' ? dataType : '', data };
}
