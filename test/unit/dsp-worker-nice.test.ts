// DSP worker threads yield to the main thread: the pool starts them at the nice value it is given (Linux keeps
// the nice value per thread), and the rest of the process keeps its own.

import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SileroPool } from '../../src/providers/vad/silero-pool.js';

/** Nice value of each thread of this process, by thread id (/proc/self/task/<tid>/stat, field 19). */
function threadNice(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, Number(fields[16]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

describe('DSP worker priority', () => {
  it('the workers run at the nice value given; the process main thread keeps its own', async () => {
    const mainBefore = threadNice().get(String(process.pid));
    const before = threadNice();
    const pool = await SileroPool.start(1, () => undefined, 7);
    try {
      const added = [...threadNice()].filter(([tid]) => !before.has(tid));
      // The worker's JS thread (and any thread it started) at 7; threads Node itself added for it stay as they were.
      expect(added.some(([, nice]) => nice === 7)).toBe(true);
      expect(threadNice().get(String(process.pid))).toBe(mainBefore);
    } finally {
      await pool.close();
    }
  });
});
