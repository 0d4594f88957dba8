// What the benchmark ran on: CPU model and cores from /proc/cpuinfo, Node version, and the load average (the
// machine is shared, so the load at the start and end of a run is part of every figure).

import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  platform: string;
  /** 1/5/15-minute load averages. */
  loadAtStart: [number, number, number];
  loadAtEnd?: [number, number, number];
}

export function cpuModel(): string {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^model name\s*:\s*(.+)$/m.exec(text);
    if (m?.[1] !== undefined) return m[1].trim();
  } catch {
    // not Linux: fall back to os.cpus()
  }
  return cpus()[0]?.model ?? 'unknown';
}

export function load(): [number, number, number] {
  const [a = 0, b = 0, c = 0] = loadavg();
  return [Math.round(a * 100) / 100, Math.round(b * 100) / 100, Math.round(c * 100) / 100];
}

export function machineInfo(): MachineInfo {
  return {
    cpuModel: cpuModel(),
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadAtStart: load(),
  };
}

export interface MachineSample {
  at: number;
  /** Microseconds some runnable task waited for a CPU (/proc/pressure/cpu "some total"), NaN without PSI. */
  cpuPressureUs: number;
  /** CPU seconds the hypervisor gave to others while this VM wanted to run (/proc/stat steal), all CPUs. */
  stealSeconds: number;
}

/** CPU pressure, to tell the daemon's own delays from a machine shared with other work. */
export function machineSample(): MachineSample {
  let cpuPressureUs = Number.NaN;
  let stealSeconds = Number.NaN;
  try {
    // cpu  user nice system idle iowait irq softirq steal … (clock ticks, 100 a second)
    const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/);
    stealSeconds = Number(f[8]) / 100;
  } catch {
    // not Linux
  }
  try {
    const m = /^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    if (m?.[1] !== undefined) cpuPressureUs = Number(m[1]);
  } catch {
    // no PSI
  }
  return { at: performance.now(), cpuPressureUs, stealSeconds };
}

/** The 10-second average of /proc/pressure/cpu "some" (percent), NaN without PSI. */
export function cpuPressureAvg10(): number {
  try {
    const m = /^some avg10=([\d.]+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return m?.[1] === undefined ? Number.NaN : Number(m[1]);
  } catch {
    return Number.NaN;
  }
}
