// A daemon child process whose whole stdout and stderr are kept as text from the first byte (for secret checks),
// started from the TypeScript sources like test/helpers/processes.ts does.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

export interface RawDaemon {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  audiosocketPort: number;
  httpPort: number;
  metricsPort: number;
  exited: Promise<number | null>;
}

export function startRawDaemon(env: Record<string, string>, timeoutMs = 60_000): Promise<RawDaemon> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cmd/pipecat-manager.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let started = false;
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the daemon did not start within ${timeoutMs} ms; stderr: ${err}`));
    }, timeoutMs);
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (started) return;
      for (const line of out.split('\n')) {
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (entry.msg !== 'pipecat-manager started') continue;
        started = true;
        clearTimeout(timer);
        const port = (k: string): number => Number(String(entry[k]).split(':').pop()?.split('/')[0]);
        resolve({
          child,
          stdout: () => out,
          stderr: () => err,
          audiosocketPort: port('audiosocket'),
          httpPort: port('http'),
          metricsPort: port('metrics'),
          exited,
        });
        return;
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      if (!started) reject(new Error(`the daemon exited with ${String(code)} before starting; stderr: ${err}`));
    });
  });
}
