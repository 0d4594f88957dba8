import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { missingOfflinePackages } from '../../src/providers/offline-packages.js';

describe('missingOfflinePackages', () => {
  it('names the Debian packages whose programs are not on PATH', () => {
    const empty = mkdtempSync(join(tmpdir(), 'nopath-'));
    const missing = missingOfflinePackages({ stt: 'sphinx', tts: 'espeak' }, empty);
    expect(missing).toContain('pocketsphinx');
    expect(missing).toContain('espeak-ng');
    expect(missingOfflinePackages({ stt: 'deepgram', tts: 'cartesia' }, empty)).toEqual([]);
  });

  it('finds executables on PATH (and ignores a file that is not executable)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'path-'));
    writeFileSync(join(dir, 'espeak-ng'), '#!/bin/sh\n');
    expect(missingOfflinePackages({ stt: 'deepgram', tts: 'espeak' }, dir)).toEqual(['espeak-ng']);
    chmodSync(join(dir, 'espeak-ng'), 0o755);
    expect(missingOfflinePackages({ stt: 'deepgram', tts: 'espeak' }, dir)).toEqual([]);
  });

  it('finds nothing missing on this machine, which has the offline bot installed', () => {
    expect(missingOfflinePackages({ stt: 'sphinx', tts: 'espeak' })).toEqual([]);
  });
});
