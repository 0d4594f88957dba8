// Typed errors of the daemon. Each maps to one RPC status code in one place (statusOf), and their messages
// say what failed without ever carrying secrets.

export type ErrorCode =
  | 'BAD_REQUEST'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'DEPENDENCY'
  | 'PROVIDER'
  | 'PROTOCOL'
  | 'CONFIG'
  | 'INTERNAL';

export class AppError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The request is malformed or asks for something unsupported (RPC 400). */
export class BadRequestError extends AppError {
  constructor(message: string) {
    super('BAD_REQUEST', message);
  }
}

/** The thing asked for does not exist, or has no live session here (RPC 404). */
export class NotFoundError extends AppError {
  constructor(message: string) {
    super('NOT_FOUND', message);
  }
}

/** The thing to create already exists (RPC 409). */
export class ConflictError extends AppError {
  constructor(message: string) {
    super('CONFLICT', message);
  }
}

/** A dependency (MySQL, Redis, RabbitMQ, a sibling service) failed or is unreachable (RPC 500). */
export class DependencyError extends AppError {
  readonly dependency: string;
  constructor(dependency: string, message: string, options?: { cause?: unknown }) {
    super('DEPENDENCY', message, options);
    this.dependency = dependency;
  }
}

/** An AI provider (STT, LLM, TTS) failed. */
export class ProviderError extends AppError {
  readonly provider: string;
  readonly stage: 'stt' | 'llm' | 'tts';
  readonly retryable: boolean;
  constructor(
    provider: string,
    stage: 'stt' | 'llm' | 'tts',
    message: string,
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super('PROVIDER', message, options);
    this.provider = provider;
    this.stage = stage;
    this.retryable = options?.retryable ?? false;
  }
}

/** A peer broke a wire protocol (Audiosocket, WebSocket frames). */
export class ProtocolError extends AppError {
  /** Bounded label for metrics: what kind of violation this was. */
  readonly kind: string;
  constructor(kind: string, message: string) {
    super('PROTOCOL', message);
    this.kind = kind;
  }
}

/** Configuration is invalid: reported once at startup. */
export class ConfigError extends AppError {
  constructor(message: string) {
    super('CONFIG', message);
  }
}

/**
 * The one error → status table, for RPC replies and the HTTP API alike (SPEC §5.1: a dependency failure is a
 * 500 naming the dependency).
 */
export function statusOf(err: unknown): number {
  if (err instanceof AppError) {
    switch (err.code) {
      case 'BAD_REQUEST':
        return 400;
      case 'NOT_FOUND':
        return 404;
      case 'CONFLICT':
        return 409;
      default:
        return 500;
    }
  }
  return 500;
}

/** A message safe to show to a caller or log: never a stack, never a secret-bearing URL. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return redactSecrets(err.message);
  return redactSecrets(String(err));
}

// Credentials in URLs/DSNs (scheme://user:pass@host) and bearer-like keys are blanked out.
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@\s]*@/gi;
const GO_DSN_CREDENTIALS = /(^|[\s"'(])([^:@\s"'()/]+):[^@\s"'()]+@tcp\(/g;
const API_KEYS = /\b(sk-[A-Za-z0-9_-]{8,}|xai-[A-Za-z0-9_-]{8,})\b/g;

export function redactSecrets(text: string): string {
  return text
    .replace(URL_CREDENTIALS, '$1:***@')
    .replace(GO_DSN_CREDENTIALS, '$1$2:***@tcp(')
    .replace(API_KEYS, '***');
}
