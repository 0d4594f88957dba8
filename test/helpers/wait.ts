// The one polling wait of the test suites: check a condition until it holds or a deadline passes, and on timeout
// say what was awaited. Prefer an event (a promise the code under test resolves) where there is one; poll only
// state that announces nothing.

import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Resolves with the milliseconds it took once `check` returns true; rejects naming `what` after `timeoutMs`.
 * The default is generous on purpose: it only decides how long a failing test takes to say so.
 */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  everyMs = 5,
): Promise<number> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
  return performance.now() - start;
}
