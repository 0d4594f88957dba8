// Timestamps as the old Go service wrote them: `YYYY-MM-DD HH:MM:SS.ffffff`, UTC, microseconds.

/** "Never": the value of tm_update/tm_delete on a row that has not been updated/deleted. */
export const TIMESTAMP_NEVER = '9999-01-01 00:00:00.000000';

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** Formats a Date (millisecond precision) with 6 fractional digits, e.g. `2024-05-01 12:00:00.123000`. */
export function formatTimestamp(date: Date): string {
  return (
    `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)} ` +
    `${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}.` +
    `${pad(date.getUTCMilliseconds(), 3)}000`
  );
}

let lastMicros = 0n;

/**
 * Now, with microsecond resolution from the monotonic clock anchored to the wall clock. Strictly increasing
 * within the process so that two updates of one row never carry the same tm_update.
 */
export function nowTimestamp(): string {
  const micros = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));
  lastMicros = micros > lastMicros ? micros : lastMicros + 1n;
  const ms = Number(lastMicros / 1000n);
  const d = new Date(ms);
  const frac = pad(Number(lastMicros % 1_000_000n), 6);
  return formatTimestamp(d).slice(0, 20) + frac;
}

const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$/;

export function isTimestamp(text: string): boolean {
  return TIMESTAMP_RE.test(text);
}

/** RFC 3339 with nanoseconds, as Go's time.RFC3339Nano prints UTC (trailing zeros trimmed). */
export function rfc3339Nano(date: Date = new Date()): string {
  const iso = date.toISOString(); // 2024-05-01T12:00:00.123Z
  const [head, frac = ''] = iso.slice(0, -1).split('.');
  const trimmed = frac.replace(/0+$/, '');
  return trimmed ? `${head}.${trimmed}Z` : `${head}Z`;
}
