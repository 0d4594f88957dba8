// Runs a bench module in a child Node process (through tsx) with an IPC channel: isolation for measurements
// that must not share an event loop, a JIT or a native library with the bench itself.

import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './daemon.js';

export function forkBench(file: string, args: string[] = []): ChildProcess {
  return fork(join(ROOT, 'bench', file), args, {
    cwd: ROOT,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // Structured clone: typed arrays (per-frame timestamps) cross without JSON.
    serialization: 'advanced',
  });
}

/** Runs a child that sends exactly one message (its result) and exits. */
export function runChild<T>(file: string, args: string[] = [], timeoutMs = 120_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = forkBench(file, args);
    let result: T | undefined;
    let got = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} ${args.join(' ')} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', (m: T) => {
      result = m;
      got = true;
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (got) resolve(result as T);
      else reject(new Error(`${file} ${args.join(' ')} exited with ${String(code)} without a result`));
    });
  });
}
