// JSON encoding byte-compatible with Go's encoding/json: struct fields in declaration order (the caller builds
// them in order), map keys sorted, and '<', '>', '&', U+2028, U+2029 escaped as \u003c… like json.Marshal does.

const GO_ESCAPES = /[<>&\u2028\u2029]/g;
const ESCAPE_OF: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

function goString(s: string): string {
  return JSON.stringify(s).replace(GO_ESCAPES, (c) => ESCAPE_OF[c] ?? c);
}

/** Encodes a JSON value the way Go encodes `any` decoded from JSON: objects are maps, so keys are sorted. */
export function goEncodeValue(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return goString(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => goEncodeValue(v)).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${keys.map((k) => `${goString(k)}:${goEncodeValue(obj[k])}`).join(',')}}`;
    }
    default:
      return 'null';
  }
}

/** One struct field: `[name, value, omitEmpty]`. Empty means '' or an empty array, like Go's omitempty. */
export type GoField = readonly [name: string, value: unknown, omitEmpty?: boolean];

/** Encodes a struct: fields in the given order, `omitEmpty` ones left out when empty. */
export function goEncodeStruct(fields: readonly GoField[]): string {
  const parts: string[] = [];
  for (const [name, value, omitEmpty] of fields) {
    if (omitEmpty === true && isEmpty(value)) continue;
    parts.push(`${goString(name)}:${goEncodeValue(value)}`);
  }
  return `{${parts.join(',')}}`;
}

function isEmpty(value: unknown): boolean {
  return (
    value === undefined ||
    value === null ||
    value === '' ||
    value === false ||
    value === 0 ||
    (Array.isArray(value) && value.length === 0)
  );
}
