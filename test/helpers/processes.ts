// Runs the real programs (daemon and CLI) as child processes from the TypeScript sources via tsx, with an
// isolated environment, for tests of exit codes, stdout/stderr and signals.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSX = ['--import', 'tsx'];

/** The environment a child starts from: PATH and HOME only, so the developer's variables never leak in. */
function baseEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<RunResult> {
  return run(['src/cmd/pipecat-control.ts', ...args], env, timeoutMs);
}

export function runDaemonToExit(args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<RunResult> {
  return run(['src/cmd/pipecat-manager.ts', ...args], env, timeoutMs);
}

function run(args: string[], env: Record<string, string>, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...TSX, ...args], { cwd: ROOT, env: baseEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args[0] ?? ''} did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface DaemonProcess {
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  audiosocketPort: number;
  httpPort: number;
  metricsPort: number;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

/** Starts the daemon and waits for its "started" log line, which carries the bound addresses. */
export function spawnDaemon(env: Record<string, string>, timeoutMs = 30_000): Promise<DaemonProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...TSX, 'src/cmd/pipecat-manager.ts'], {
      cwd: ROOT,
      env: baseEnv({ LOG_LEVEL: 'info', ADMISSION_CONTROL: 'off', ...env }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const logs: Array<Record<string, unknown>> = [];
    let stderr = '';
    let buffer = '';
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the daemon did not start within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout.on('data', (b: Buffer) => {
      buffer += b.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        logs.push(entry);
        if (entry.msg === 'pipecat-manager started') {
          clearTimeout(timer);
          const port = (k: string): number => Number(String(entry[k]).split(':').pop()?.split('/')[0]);
          resolve({
            child,
            logs,
            audiosocketPort: port('audiosocket'),
            httpPort: port('http'),
            metricsPort: port('metrics'),
            exited,
            kill: (signal = 'SIGTERM') => child.kill(signal),
          });
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the daemon exited with ${String(code)} before starting; stderr: ${stderr}`));
    });
  });
}
