import { describe, expect, it } from 'vitest';
import { checkRequestLimits, jsonDepth } from '../../src/rpc/request-limits.js';
import { nofileNeeded, resolveCaps } from '../../src/http/connection-limits.js';

describe('jsonDepth', () => {
  it('counts objects and arrays, not brackets inside strings (escaped quotes included)', () => {
    expect(jsonDepth(Buffer.from('{"a":[1,{"b":[]}]}'))).toBe(4);
    expect(jsonDepth(Buffer.from('{"a":"[[[[{{{{\\"[[[["}'))).toBe(1);
    expect(jsonDepth(Buffer.from('"just a string"'))).toBe(0);
    expect(jsonDepth(Buffer.from('['.repeat(1000)), 64)).toBe(65);
  });

  it('refuses bodies over the size or 64 levels with a 400 naming the limit', () => {
    expect(() => checkRequestLimits(Buffer.alloc(2048), 1024)).toThrow(/RPC_MAX_REQUEST_BYTES/);
    expect(() => checkRequestLimits(Buffer.from(`${'['.repeat(65)}${']'.repeat(65)}`), 1024)).toThrow(/nests deeper than 64/);
    expect(() => checkRequestLimits(Buffer.from(`${'['.repeat(64)}${']'.repeat(64)}`), 1024)).not.toThrow();
  });
});

describe('connection caps', () => {
  it('derives caps that fit the nofile limit, and keeps configured ones', () => {
    for (const nofile of [256, 1024, 20_000, 1_048_576]) {
      const caps = resolveCaps({ audiosocket: 0, http: 0, websocket: 0 }, nofile);
      expect(nofileNeeded(caps.audiosocket + caps.websocket, caps.http), String(nofile)).toBeLessThanOrEqual(Math.max(nofile, 128 + 16 + 20));
      expect(caps.audiosocket).toBeGreaterThan(0);
    }
    expect(resolveCaps({ audiosocket: 5, http: 7, websocket: 3 }, 256)).toEqual({ audiosocket: 5, http: 7, websocket: 3 });
  });
});
