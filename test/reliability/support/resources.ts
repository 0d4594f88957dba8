// What a process holds, for leak checks: heap after full GCs, libuv handles by type, and child processes.

import { readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** heapUsed after several full collections (needs --expose-gc, which vitest.reliability.config.ts sets). */
export async function heapAfterGc(): Promise<number> {
  const gc = globalThis.gc;
  if (gc === undefined) throw new Error('global gc() is missing: run under vitest.reliability.config.ts (--expose-gc)');
  for (let i = 0; i < 4; i++) {
    gc();
    // Let finalizers and weak callbacks run between collections.
    await sleep(20);
  }
  return process.memoryUsage().heapUsed;
}

export const MiB = 1024 * 1024;

/** libuv resources of this process by type (TCPSocketWrap, Timeout, ProcessWrap, …). */
export function activeResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

/** Resource types whose count is above the baseline's, with both counts; empty when nothing grew. */
export function grownResources(baseline: Map<string, number>, now = activeResources()): string[] {
  const grown: string[] = [];
  for (const [type, n] of now) {
    const before = baseline.get(type) ?? 0;
    if (n > before) grown.push(`${type}: ${before} → ${n}`);
  }
  return grown;
}

export interface ChildProcessInfo {
  pid: number;
  command: string;
  state: string;
}

/** Live (or zombie) children of `ppid`, read from /proc. */
export function childProcesses(ppid = process.pid): ChildProcessInfo[] {
  const out: ChildProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    // pid (comm) state ppid …: comm may contain spaces and parentheses, so split after the last ')'.
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    if (Number(fields[1]) !== ppid) continue;
    out.push({ pid: Number(entry), command: stat.slice(stat.indexOf('(') + 1, close), state: fields[0] ?? '?' });
  }
  return out;
}

const TCP_STATES: Record<string, string> = {
  '01': 'ESTABLISHED', '02': 'SYN_SENT', '03': 'SYN_RECV', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '06': 'TIME_WAIT',
  '07': 'CLOSE', '08': 'CLOSE_WAIT', '09': 'LAST_ACK', '0A': 'LISTEN', '0B': 'CLOSING',
};

/**
 * TCP connections on this machine with `port` at either end, by state, from /proc/net/tcp{,6}. Sockets a process
 * still holds show as ESTABLISHED or CLOSE_WAIT (the peer left, nobody closed ours); TIME_WAIT and FIN_WAIT belong
 * to the kernel alone. The listener itself is left out.
 */
export function tcpConnectionsOnPort(port: number): Map<string, number> {
  const states = new Map<string, number>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const local = f[1]?.split(':')[1];
      const remote = f[2]?.split(':')[1];
      const state = TCP_STATES[f[3] ?? ''] ?? f[3] ?? '?';
      if ((local === hexPort || remote === hexPort) && state !== 'LISTEN') states.set(state, (states.get(state) ?? 0) + 1);
    }
  }
  return states;
}

/** Connections on `port` that some process still holds open (ESTABLISHED, CLOSE_WAIT, SYN_*). */
export function heldConnectionsOnPort(port: number): number {
  let n = 0;
  for (const [state, count] of tcpConnectionsOnPort(port)) {
    if (state === 'ESTABLISHED' || state === 'CLOSE_WAIT' || state.startsWith('SYN')) n += count;
  }
  return n;
}

/** Listeners on `process` by event ('exit', 'SIGTERM', 'warning', …): a per-call listener here would be a leak. */
export function processListeners(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of process.eventNames()) out[String(name)] = process.listenerCount(name);
  return out;
}
