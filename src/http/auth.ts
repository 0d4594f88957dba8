// HTTP_AUTH_TOKEN checks for the WebSocket upgrade and the console API: `Authorization: Bearer <token>`, or
// `?token=<token>` because browsers cannot set headers on a WebSocket.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config.js';

function digest(s: string): Buffer {
  // Hashing first gives equal-length inputs, so the comparison time says nothing about the token's length.
  return createHash('sha256').update(s).digest();
}

/** True when no token is configured, or the request carries it. */
export function isAuthorized(req: IncomingMessage, url: URL, token: string): boolean {
  if (token === '') return true;
  const expected = digest(token);
  const header = req.headers.authorization;
  const bearer = typeof header === 'string' ? /^Bearer\s+(.+)$/i.exec(header.trim())?.[1] : undefined;
  const candidates = [bearer, url.searchParams.get('token') ?? undefined];
  return candidates.some((c) => c !== undefined && timingSafeEqual(digest(c), expected));
}

/** The request's URL; the host part is irrelevant (only path and query are read). */
export function requestUrl(req: IncomingMessage): URL {
  try {
    return new URL(req.url ?? '/', 'http://localhost');
  } catch {
    return new URL('http://localhost/');
  }
}

/** Names that always mean this machine: a DNS-rebinding page can never be served from them. */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1', '[::1]'];

/** True for an address only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export interface RequestPolicyOptions {
  /** The HTTP listener's configured host (0.0.0.0 and :: add nothing: they are not names a client uses). */
  listenHost: string;
  podIp: string;
  allowedHosts: readonly string[];
  allowedOrigins: readonly string[];
}

/** Why a request was refused before any route saw it; null when it may go on. */
export interface Refusal {
  status: number;
  message: string;
}

/**
 * The Host allow-list and the Origin rule of the HTTP server (issue 12, item 1). A browser tricked by DNS rebinding
 * sends the attacker's name as Host, so only names of this machine are answered; a page of another origin can
 * send requests but cannot hide its Origin, so state-changing requests and WebSocket upgrades must come from the
 * server's own origin or a configured one. Clients that are not browsers send no Origin and are not affected.
 */
export class RequestPolicy {
  private readonly hosts: Set<string>;
  private readonly origins: Set<string>;

  static fromConfig(c: Pick<Config, 'httpListen' | 'podIp' | 'httpAllowedHosts' | 'httpAllowedOrigins'>): RequestPolicy {
    return new RequestPolicy({
      listenHost: c.httpListen.host,
      podIp: c.podIp,
      allowedHosts: c.httpAllowedHosts,
      allowedOrigins: c.httpAllowedOrigins,
    });
  }

  constructor(o: RequestPolicyOptions) {
    const names = [...LOOPBACK_NAMES, o.podIp, ...o.allowedHosts];
    if (o.listenHost !== '0.0.0.0' && o.listenHost !== '::' && o.listenHost !== '') names.push(o.listenHost);
    this.hosts = new Set(names.map((n) => n.toLowerCase().replace(/^\[|\]$/g, '')));
    this.origins = new Set(o.allowedOrigins);
  }

  /** The Host check, for every request and upgrade. */
  checkHost(req: IncomingMessage): Refusal | null {
    const name = hostName(req.headers.host);
    if (name === null) return { status: 400, message: 'a Host header is required' };
    if (this.hosts.has(name)) return null;
    return {
      status: 421,
      message: `this server does not answer for host ${JSON.stringify(name.slice(0, 100))} (add it to HTTP_ALLOWED_HOSTS)`,
    };
  }

  /** The Origin check, for state-changing requests and every WebSocket upgrade. Call after checkHost. */
  checkOrigin(req: IncomingMessage): Refusal | null {
    const origin = req.headers.origin;
    if (origin === undefined) return null;
    const host = req.headers.host ?? '';
    if (this.origins.has(origin.toLowerCase()) || sameOrigin(origin, host)) return null;
    return {
      status: 403,
      message: `requests from origin ${JSON.stringify(origin.slice(0, 200))} are not allowed (add it to HTTP_ALLOWED_ORIGINS)`,
    };
  }
}

/** The host name of a Host header without its port, lowercased; null when absent or malformed. */
function hostName(header: string | undefined): string | null {
  if (header === undefined || header === '') return null;
  try {
    return new URL(`http://${header}`).hostname.toLowerCase().replace(/^\[|\]$/g, '');
  } catch {
    return null;
  }
}

function sameOrigin(origin: string, host: string): boolean {
  try {
    const o = new URL(origin);
    if (o.protocol !== 'http:' && o.protocol !== 'https:') return false;
    // The server speaks plain HTTP; behind a TLS proxy the page is https with the same host (and default port).
    const plain = new URL(`http://${host}`).host;
    const tls = new URL(`https://${host}`).host;
    return o.host === (o.protocol === 'http:' ? plain : tls);
  } catch {
    return false;
  }
}
