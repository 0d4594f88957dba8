// The process logger: pino JSON lines, one child per call carrying pipecatcall_id. Secrets are redacted by key.

import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger } from 'pino';

/** Keys whose values are never written, wherever they appear in a log object. */
const REDACT = [
  'password',
  '*.password',
  'apiKey',
  '*.apiKey',
  'engine_key',
  '*.engine_key',
  'authorization',
  '*.authorization',
  'token',
  '*.token',
];

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'pipecat-manager' },
      redact: { paths: REDACT, censor: '***' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
