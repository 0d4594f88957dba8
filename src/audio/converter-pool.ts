// libsamplerate converters that share one compiled module instance per (quality, rates): a converter is a
// libsamplerate state (60–430 KiB) inside a shared module, instead of a module of its own (1.5–1.8 MiB resident,
// a 25 MiB ArrayBuffer and 4–20 ms of event-loop time to create, measured on 2.1.2).
//
// How: libsamplerate-js 2.1.2 is emscripten wasm2js output whose C glue keeps ONE global `SRC_STATE *src`; init()
// allocates a new state and points `src` at it, full()/destroy() act on whatever `src` points at. So each
// converter is a state pointer, and using it means writing that pointer into `src` first. Where `src` lives is
// found once per module by a probe (the only static word that takes the address of a new SRC_STATE on each
// init()) and then verified by behaviour (two interleaved states must each continue their own stream exactly);
// if either check fails (another build of the library), every converter gets a module of its own, as before.

import LibSampleRate from '@alexanderolsen/libsamplerate-js';
import type { ResamplerQuality } from '../config.js';

type Src = Awaited<ReturnType<typeof LibSampleRate.create>>;
type ConverterTypeValue = (typeof LibSampleRate.ConverterType)['SRC_SINC_FASTEST'];

export const CONVERTER_TYPE: Readonly<Record<ResamplerQuality, ConverterTypeValue>> = {
  sinc_best: LibSampleRate.ConverterType.SRC_SINC_BEST_QUALITY,
  sinc_medium: LibSampleRate.ConverterType.SRC_SINC_MEDIUM_QUALITY,
  sinc_fastest: LibSampleRate.ConverterType.SRC_SINC_FASTEST,
};

/**
 * Heap a module may give to states. The module's memory is a fixed 25 MiB of which ≈ 16.7 MiB is free heap; the
 * library allows memory growth, but growing would leave its cached transfer views on the old buffer, so a module
 * must never grow: states beyond this budget go to another module.
 */
const STATE_BUDGET_BYTES = 12 * 1024 * 1024;

/** One libsamplerate stream: a state in a shared module, or a module of its own. */
export interface Converter {
  /** Resamples `input` into `output`; `frames.frames` is set to the number of samples produced. */
  full(input: Float32Array, output: Float32Array, frames: { frames: number }): void;
  /** Frees the state. Idempotent. */
  release(): void;
}

/** A module instance hosting many states of one quality and one pair of rates. */
class Host {
  live = 0;
  private readonly heap: Int32Array;

  private constructor(
    private readonly src: Src,
    /** Word index of the C global `src` in the module's memory. */
    private readonly pointerIndex: number,
    readonly capacity: number,
    private readonly type: ConverterTypeValue,
    private readonly fromRate: number,
    private readonly toRate: number,
  ) {
    this.heap = new Int32Array(src.sourceArray.buffer);
  }

  /** A host, or null when this build of the library does not have the layout this module relies on. */
  static async create(type: ConverterTypeValue, fromRate: number, toRate: number): Promise<Host | null> {
    const src = await LibSampleRate.create(1, fromRate, toRate, { converterType: type });
    const found = Host.findStatePointer(src, type, fromRate, toRate);
    if (found === null) {
      src.destroy();
      return null;
    }
    const host = new Host(src, found.index, Math.max(1, Math.floor(STATE_BUDGET_BYTES / found.stride)), type, fromRate, toRate);
    const ok = host.verify();
    // The states made by create() and by the probe are not needed: free them (their memory is reused).
    for (const state of found.states) host.free(state);
    return ok ? host : null;
  }

  /**
   * The word of the module's static memory that holds `src`: it takes a new value on every init(), and that
   * value is the address of a fresh SRC_STATE (libsamplerate 0.2: vtable pointer into static data at offset 0,
   * `channels` = 1 at offset 28, private data pointer at offset 52). The glue's globals sit before its `source`
   * array or right after its `target` array.
   */
  private static findStatePointer(
    src: Src,
    type: ConverterTypeValue,
    fromRate: number,
    toRate: number,
  ): { index: number; stride: number; states: number[] } | null {
    const buffer = src.sourceArray.buffer;
    const heap = new Int32Array(buffer);
    const staticEnd = src.sourceArray.byteOffset;
    const bssStart = src.targetArray.byteOffset + src.targetArray.byteLength;
    const ranges: Array<[number, number]> = [
      [0, staticEnd >> 2],
      [bssStart >> 2, Math.min(heap.length, (bssStart + 256 * 1024) >> 2)],
    ];
    const looksLikeState = (v: number): boolean => {
      if (v < bssStart || v + 56 > buffer.byteLength || v % 4 !== 0) return false;
      const w = v >> 2;
      const vtable = heap[w] as number;
      const privateData = heap[w + 13] as number;
      return vtable > 0 && vtable < staticEnd && heap[w + 7] === 1 && privateData > v && privateData < buffer.byteLength;
    };
    const before = new Map<number, number>();
    const snapshots = ranges.map(([from, to]) => ({ from, words: heap.slice(from, to) }));
    src.module.init(1, type, fromRate, toRate);
    for (const { from, words } of snapshots) {
      for (let i = 0; i < words.length; i++) {
        const v = heap[from + i] as number;
        if (v !== words[i] && looksLikeState(v)) before.set(from + i, words[i] as number);
      }
    }
    if (before.size !== 1) return null;
    const [[index, initial]] = [...before] as [[number, number]];
    const a = heap[index] as number;
    src.module.init(1, type, fromRate, toRate);
    const b = heap[index] as number;
    const stride = b - a;
    if (!looksLikeState(b) || stride <= 0 || heap[a >> 2] !== heap[b >> 2] || src.sourceArray.buffer !== buffer) return null;
    const states = [a, b];
    if (looksLikeState(initial)) states.push(initial);
    return { index, stride, states };
  }

  get full(): boolean {
    return this.live >= this.capacity;
  }

  allocate(): Converter {
    this.src.module.init(1, this.type, this.fromRate, this.toRate);
    const state = this.heap[this.pointerIndex] as number;
    this.live++;
    let released = false;
    return {
      full: (input, output, frames) => {
        this.heap[this.pointerIndex] = state;
        this.src.full(input, output, frames);
      },
      release: () => {
        if (released) return;
        released = true;
        this.free(state);
        this.live--;
        pool.released(this);
      },
    };
  }

  private free(state: number): void {
    this.heap[this.pointerIndex] = state;
    this.src.module.destroy();
  }

  /**
   * Two states fed interleaved must each give exactly what a third gives on the same input uninterrupted: proof
   * that the pointer found is the one full() uses, and that swapping it swaps the whole stream state.
   */
  private verify(): boolean {
    const n = Math.ceil(this.fromRate / 50);
    const x = new Float32Array(n * 2);
    const y = new Float32Array(n);
    for (let i = 0; i < x.length; i++) x[i] = 0.5 * Math.sin(i * 0.37) + 0.25 * Math.sin(i * 0.051);
    for (let i = 0; i < y.length; i++) y[i] = i % 7 === 0 ? 0.9 : -0.3;
    const outLen = Math.ceil(n * (this.toRate / this.fromRate)) + Math.ceil(this.toRate / 20) + 16;
    const run = (c: Converter, input: Float32Array): Float32Array => {
      const out = new Float32Array(outLen);
      const frames = { frames: 0 };
      c.full(input, out, frames);
      return out.slice(0, frames.frames);
    };
    const a = this.allocate();
    const b = this.allocate();
    const c = this.allocate();
    try {
      run(a, x.subarray(0, n));
      run(b, y);
      const interleaved = run(a, x.subarray(n));
      run(c, x.subarray(0, n));
      const straight = run(c, x.subarray(n));
      return interleaved.length === straight.length && interleaved.length > 0 && interleaved.every((v, i) => v === straight[i]);
    } finally {
      for (const s of [a, b, c]) s.release();
    }
  }
}

/** A converter with a module of its own: the fallback, and the library's plain usage. */
async function dedicated(type: ConverterTypeValue, fromRate: number, toRate: number): Promise<Converter> {
  const src = await LibSampleRate.create(1, fromRate, toRate, { converterType: type });
  let released = false;
  return {
    full: (input, output, frames) => void src.full(input, output, frames),
    release: () => {
      if (released) return;
      released = true;
      src.destroy();
    },
  };
}

class ConverterPool {
  /** Hosts by `quality:from:to`, oldest first: new states go to the oldest host with room. */
  private readonly hosts = new Map<string, Host[]>();
  private readonly creating = new Map<string, Promise<Host | null>>();
  /** False once a probe failed: from then on every converter gets its own module. */
  private sharing = true;

  async acquire(quality: ResamplerQuality, fromRate: number, toRate: number): Promise<Converter> {
    const type = CONVERTER_TYPE[quality];
    if (!this.sharing) return dedicated(type, fromRate, toRate);
    const key = `${quality}:${fromRate}:${toRate}`;
    for (;;) {
      const list = this.hosts.get(key) ?? [];
      const host = list.find((h) => !h.full);
      if (host !== undefined) return host.allocate();
      // One module per key is created at a time; callers arriving meanwhile wait for it.
      let pending = this.creating.get(key);
      if (pending === undefined) {
        pending = Host.create(type, fromRate, toRate).finally(() => this.creating.delete(key));
        this.creating.set(key, pending);
        const created = await pending;
        if (created === null) {
          this.sharing = false;
          return dedicated(type, fromRate, toRate);
        }
        this.hosts.set(key, [...(this.hosts.get(key) ?? []), created]);
      } else if ((await pending) === null) {
        return dedicated(type, fromRate, toRate);
      }
    }
  }

  /** An emptied host that is not the last of its key is dropped, so its 25 MiB buffer can be collected. */
  released(host: Host): void {
    if (host.live > 0) return;
    for (const [key, list] of this.hosts) {
      if (list.length > 1 && list.includes(host)) this.hosts.set(key, list.filter((h) => h !== host));
    }
  }

  stats(): { sharing: boolean; modules: number; converters: number } {
    let modules = 0;
    let converters = 0;
    for (const list of this.hosts.values()) {
      modules += list.length;
      for (const h of list) converters += h.live;
    }
    return { sharing: this.sharing, modules, converters };
  }
}

const pool = new ConverterPool();

/** A converter for one stream: a state in a shared module when possible. */
export function acquireConverter(quality: ResamplerQuality, fromRate: number, toRate: number): Promise<Converter> {
  return pool.acquire(quality, fromRate, toRate);
}

/** What the pool holds: whether sharing works with this library build, modules alive, converters live in them. */
export function converterPoolStats(): { sharing: boolean; modules: number; converters: number } {
  return pool.stats();
}
