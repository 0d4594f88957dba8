import { describe, expect, it } from 'vitest';
import { BadRequestError, redactSecrets } from '../../src/errors.js';
import { goEncodeValue } from '../../src/model/go-json.js';
import { encodeMessage } from '../../src/model/message.js';
import { decodePipecatcall, encodePipecatcall, isTerminated, type Pipecatcall } from '../../src/model/pipecatcall.js';
import { formatTimestamp, nowTimestamp, rfc3339Nano, TIMESTAMP_NEVER } from '../../src/model/timestamp.js';
import { NIL_UUID, parseUuid, uuidField, uuidFromBytes, uuidToBytes } from '../../src/model/uuid.js';

const base: Pipecatcall = {
  id: '6e1c1f0e-9b1a-4c3e-8f00-0123456789ab',
  customer_id: NIL_UUID,
  activeflow_id: NIL_UUID,
  reference_type: '',
  reference_id: NIL_UUID,
  host_id: '',
  llm_type: '',
  llm_messages: [],
  stt_type: '',
  stt_language: '',
  tts_type: '',
  tts_language: '',
  tts_voice_id: '',
  tm_create: '2024-05-01 12:00:00.123456',
  tm_update: TIMESTAMP_NEVER,
  tm_delete: TIMESTAMP_NEVER,
};

describe('Pipecatcall JSON', () => {
  it('keeps nil UUIDs, drops empty strings and messages, in Go field order', () => {
    expect(encodePipecatcall(base)).toBe(
      '{"id":"6e1c1f0e-9b1a-4c3e-8f00-0123456789ab","customer_id":"00000000-0000-0000-0000-000000000000",' +
        '"activeflow_id":"00000000-0000-0000-0000-000000000000","reference_id":"00000000-0000-0000-0000-000000000000",' +
        '"tm_create":"2024-05-01 12:00:00.123456","tm_update":"9999-01-01 00:00:00.000000","tm_delete":"9999-01-01 00:00:00.000000"}',
    );
  });

  it('encodes message maps with sorted keys and Go HTML escaping', () => {
    const p = { ...base, llm_messages: [{ role: 'user', content: 'a<b>&c\u2028', name: 'x' }], stt_type: 'sphinx' };
    const json = encodePipecatcall(p);
    expect(json).toContain('"llm_messages":[{"content":"a\\u003cb\\u003e\\u0026c\\u2028","name":"x","role":"user"}],"stt_type":"sphinx"');
    expect(decodePipecatcall(json)).toEqual(p);
  });

  it('tells terminated rows by tm_delete', () => {
    expect(isTerminated(base)).toBe(false);
    expect(isTerminated({ ...base, tm_delete: '2024-05-01 12:00:01.000000' })).toBe(true);
  });

  it('encodes a Message with UUIDs always present and text omitted when empty', () => {
    expect(
      encodeMessage({ id: base.id, customer_id: NIL_UUID, pipecatcall_id: base.id, pipecatcall_reference_type: 'call', pipecatcall_reference_id: NIL_UUID, text: '' }),
    ).toBe(
      `{"id":"${base.id}","customer_id":"${NIL_UUID}","pipecatcall_id":"${base.id}","pipecatcall_reference_type":"call","pipecatcall_reference_id":"${NIL_UUID}"}`,
    );
  });

  it('goEncodeValue handles nested values', () => {
    expect(goEncodeValue({ b: [1, true, null], a: { d: 'x', c: 2.5 } })).toBe('{"a":{"c":2.5,"d":"x"},"b":[1,true,null]}');
  });
});

describe('UUIDs', () => {
  const id = '6e1c1f0e-9b1a-4c3e-8f00-0123456789ab';
  it('parses the forms Go accepts', () => {
    for (const s of [id, id.toUpperCase(), id.replace(/-/g, ''), `{${id}}`, `urn:uuid:${id}`]) expect(parseUuid(s)).toBe(id);
    expect(parseUuid('6e1c1f0e-9b1a-4c3e-8f00-0123456789a')).toBeNull();
    expect(parseUuid('')).toBeNull();
  });
  it('maps JSON fields: null/absent → nil, "" → 400', () => {
    expect(uuidField(null, 'x')).toBe(NIL_UUID);
    expect(uuidField(undefined, 'x')).toBe(NIL_UUID);
    expect(() => uuidField('', 'customer_id')).toThrow(BadRequestError);
    expect(() => uuidField(12, 'x')).toThrow(/must be a UUID string/);
  });
  it('round-trips 16 raw bytes in textual order', () => {
    const b = uuidToBytes(id);
    expect(b.toString('hex')).toBe(id.replace(/-/g, ''));
    expect(uuidFromBytes(b)).toBe(id);
  });
});

describe('timestamps', () => {
  it('formats UTC with microseconds', () => {
    expect(formatTimestamp(new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 67)))).toBe('2024-01-02 03:04:05.067000');
    const a = nowTimestamp();
    const b = nowTimestamp();
    expect(a).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$/);
    expect(b > a).toBe(true);
  });
  it('prints RFC 3339 like Go (trailing zeros trimmed)', () => {
    expect(rfc3339Nano(new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 120)))).toBe('2024-01-02T03:04:05.12Z');
    expect(rfc3339Nano(new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 0)))).toBe('2024-01-02T03:04:05Z');
  });
});

describe('redactSecrets', () => {
  it('blanks credentials in URLs, Go DSNs and API keys', () => {
    expect(redactSecrets('amqp://guest:guest@h:5672/')).toBe('amqp://guest:***@h:5672/');
    expect(redactSecrets('dsn user:pw@tcp(h:3306)/db')).toBe('dsn user:***@tcp(h:3306)/db');
    expect(redactSecrets('key sk-abcdef1234567890 bad')).toBe('key *** bad');
  });
});
