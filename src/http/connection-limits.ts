// Connection caps per listener, sized from the process's open-file limit so the daemon never runs out of file
// descriptors: at EMFILE the kernel's accept fails, libuv silently drops the new connection, and even /healthz
// cannot be answered. Below the caps every connection still has its descriptors.

import { readFileSync, readdirSync } from 'node:fs';
import type { Config } from '../config.js';
import { LogThrottle } from '../log-throttle.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ConnectionCap } from './tracked-server.js';

/** Descriptors the process holds without any call: pools, broker, Redis, workers, listeners, stdio, inspector. */
export const RESERVED_FDS = 128;
/**
 * Descriptors one call may hold at once: its media socket, the STT and TTS connections or child-process pipes
 * (espeak-ng and pocketsphinx each take 3), the LLM's HTTP socket, with room for a reconnect.
 */
export const FDS_PER_CALL = 10;

export interface ConnectionCaps {
  audiosocket: number;
  http: number;
  websocket: number;
}

/** The soft RLIMIT_NOFILE of this process, from /proc; null where /proc is not there. */
export function nofileLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    if (soft === undefined) return null;
    return soft === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(soft);
  } catch {
    return null;
  }
}

/** The `nofile` a deployment should set for `calls` concurrent calls and `http` HTTP connections. */
export function nofileNeeded(calls: number, http: number): number {
  return RESERVED_FDS + calls * FDS_PER_CALL + http;
}

/**
 * The caps in force: configured ones as given (0 = unset), unset ones derived from `nofile`. The HTTP listener
 * gets an eighth of the budget (16 to 1024), the calls the rest, three quarters of it Audiosocket.
 */
export function resolveCaps(configured: ConnectionCaps, nofile: number | null): ConnectionCaps {
  const budget = Math.max(0, Math.min(nofile ?? 65_536, 10_000_000) - RESERVED_FDS);
  const http = configured.http || Math.min(1024, Math.max(16, Math.floor(budget / 8)));
  const forCalls = Math.max(0, budget - http);
  return {
    audiosocket: configured.audiosocket || Math.max(1, Math.floor((forCalls * 3) / 4 / FDS_PER_CALL)),
    http,
    websocket: configured.websocket || Math.max(1, Math.min(http, Math.floor(forCalls / 4 / FDS_PER_CALL))),
  };
}

/** Resolves the caps at startup and says in the log which limit is in force and what it would take to raise it. */
export function startupCaps(config: Pick<Config, 'maxConnections'>, log: Logger): ConnectionCaps {
  const nofile = nofileLimit();
  const caps = resolveCaps(config.maxConnections, nofile);
  const needed = nofileNeeded(caps.audiosocket + caps.websocket, caps.http);
  log.info({ nofile, ...caps, nofile_needed: needed }, 'connection caps');
  if (nofile !== null && needed > nofile) {
    log.warn(
      { nofile, nofile_needed: needed },
      'the open-file limit (nofile) is below what the configured connection caps need: raise it or lower the caps',
    );
  }
  return caps;
}

/** The HTTP listener's cap with its counter and rate-limited log lines. */
export function httpConnectionCap(max: number, metrics: Metrics, log: Logger): ConnectionCap {
  const throttle = new LogThrottle();
  return {
    max,
    onRefused: () => {
      metrics.connectionsRefusedTotal.inc({ listener: 'http', reason: 'cap' });
      throttle.warn(log, { max }, 'HTTP connection over the cap: only health probes are answered on it');
    },
    onAcceptError: (err) => {
      const reason = err.code === 'EMFILE' || err.code === 'ENFILE' ? 'emfile' : 'accept_error';
      metrics.connectionsRefusedTotal.inc({ listener: 'http', reason });
      throttle.warn(log, { err: err.message, code: err.code }, 'HTTP listener cannot accept connections');
    },
  };
}

/** Descriptors left below the limit at which the process counts as at its limit. */
const FD_HEADROOM = 8;

/**
 * At EMFILE libuv accepts and closes new connections itself (its reserve-descriptor trick), so no listener ever
 * sees an error: the only way to notice is to count open descriptors. Every 2 s the count in /proc/self/fd is
 * compared with the limit; at the limit a rate-limited warning is logged and a counter incremented.
 */
export class OpenFileWatch {
  private readonly timer: NodeJS.Timeout | null;
  private readonly throttle = new LogThrottle();

  constructor(
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly limit: number | null = nofileLimit(),
    intervalMs = 2_000,
  ) {
    this.timer = limit === null ? null : setInterval(() => this.check(), intervalMs);
    this.timer?.unref();
  }

  /** Open descriptors now; 'emfile' when not even the directory can be opened; null where /proc is not there. */
  static openFiles(): number | 'emfile' | null {
    try {
      return readdirSync('/proc/self/fd').length;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'EMFILE' || code === 'ENFILE' ? 'emfile' : null;
    }
  }

  check(): void {
    const open = OpenFileWatch.openFiles();
    if (open === null || this.limit === null) return;
    if (open !== 'emfile' && open < this.limit - FD_HEADROOM) return;
    this.metrics.openFileLimitReachedTotal.inc();
    this.throttle.warn(
      this.log,
      { open_files: open, nofile: this.limit },
      'the process is at its open-file limit (EMFILE): new calls and connections are being dropped; raise nofile or lower the connection caps',
    );
  }

  /** Idempotent. */
  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
  }
}
