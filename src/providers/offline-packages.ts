// Which Debian packages the offline bot (sphinx STT, espeak TTS) still lacks on this machine, so startup can say
// in one line what to install before the first call needs them. No npm package can stand in (see README).

import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { DEFAULT_MODEL_DIR } from './stt/sphinx.js';

export interface OfflineNeeds {
  stt: string;
  tts: string;
}

/** The missing packages for these provider types, in apt-get order; [] when nothing is missing. */
export function missingOfflinePackages(needs: OfflineNeeds, path: string = process.env.PATH ?? ''): string[] {
  const missing: string[] = [];
  if (needs.stt === 'sphinx') {
    if (!onPath('pocketsphinx_continuous', path)) missing.push('pocketsphinx');
    if (!existsSync(join(DEFAULT_MODEL_DIR, 'en-us'))) missing.push('pocketsphinx-en-us');
  }
  if (needs.tts === 'espeak' && !onPath('espeak-ng', path)) missing.push('espeak-ng');
  return missing;
}

function onPath(binary: string, path: string): boolean {
  return path
    .split(delimiter)
    .filter((dir) => dir !== '')
    .some((dir) => {
      try {
        accessSync(join(dir, binary), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}
