// HTTP_AUTH_TOKEN checks for the WebSocket upgrade and the console API: `Authorization: Bearer <token>`, or
// `?token=<token>` because browsers cannot set headers on a WebSocket.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

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
