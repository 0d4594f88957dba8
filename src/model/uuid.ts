// UUID parsing and formatting with the leniency of Go's uuid.Parse on input and canonical lowercase on output.

import { randomUUID } from 'node:crypto';
import { BadRequestError } from '../errors.js';

export const NIL_UUID = '00000000-0000-0000-0000-000000000000';

const CANONICAL = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEX32 = /^[0-9a-f]{32}$/i;

/** Parses a textual UUID (canonical in any case, 32 hex, `{…}`, `urn:uuid:…`) to canonical lowercase, or null. */
export function parseUuid(text: string): string | null {
  let s = text;
  if (s.length === 45 && s.slice(0, 9).toLowerCase() === 'urn:uuid:') s = s.slice(9);
  else if (s.length === 38 && s.startsWith('{') && s.endsWith('}')) s = s.slice(1, -1);
  if (CANONICAL.test(s)) return s.toLowerCase();
  if (HEX32.test(s)) {
    const h = s.toLowerCase();
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  return null;
}

/**
 * A UUID field of a JSON body: absent or null → nil UUID; empty string or anything unparsable → 400.
 */
export function uuidField(value: unknown, field: string): string {
  if (value === undefined || value === null) return NIL_UUID;
  if (typeof value !== 'string') throw new BadRequestError(`${field} must be a UUID string`);
  if (value === '') throw new BadRequestError(`${field} must not be an empty string`);
  const id = parseUuid(value);
  if (id === null) throw new BadRequestError(`${field} is not a valid UUID: ${JSON.stringify(value.slice(0, 64))}`);
  return id;
}

export function newUuid(): string {
  return randomUUID();
}

export function isNilUuid(id: string): boolean {
  return id === NIL_UUID;
}

/** The 16 raw bytes of a canonical UUID, in textual order (MySQL binary(16), Audiosocket 0x01). */
export function uuidToBytes(id: string): Buffer {
  return Buffer.from(id.replace(/-/g, ''), 'hex');
}

/** The canonical lowercase form of 16 raw bytes. */
export function uuidFromBytes(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new RangeError(`a UUID is 16 bytes, got ${bytes.length}`);
  const h = Buffer.from(bytes.buffer, bytes.byteOffset, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
