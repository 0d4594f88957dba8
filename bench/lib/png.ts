// A small PNG line chart with no dependency: an RGB raster, straight lines, a 5×7 bitmap font (upper case, digits,
// a few signs), and a PNG encoder (IHDR, one zlib IDAT via node:zlib, IEND; CRC-32 per chunk).

import { deflateSync } from 'node:zlib';

export type Rgb = readonly [number, number, number];

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = (CRC_TABLE[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

export class Raster {
  readonly pixels: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = [255, 255, 255],
  ) {
    this.pixels = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.pixels.set(background, i * 3);
  }

  set(x: number, y: number, c: Rgb): void {
    const xi = Math.round(x);
    const yi = Math.round(y);
    if (xi < 0 || yi < 0 || xi >= this.width || yi >= this.height) return;
    this.pixels.set(c, (yi * this.width + xi) * 3);
  }

  /** A line `thickness` pixels wide (Bresenham, a square brush). */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thickness = 1): void {
    const steps = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    const r = (thickness - 1) / 2;
    for (let i = 0; i <= steps; i++) {
      const x = x0 + ((x1 - x0) * i) / steps;
      const y = y0 + ((y1 - y0) * i) / steps;
      for (let dx = -Math.floor(r); dx <= Math.ceil(r); dx++) for (let dy = -Math.floor(r); dy <= Math.ceil(r); dy++) this.set(x + dx, y + dy, c);
    }
  }

  /** Text in the 5×7 font at `scale`; (x, y) is the top left. Characters without a glyph are drawn as spaces. */
  text(x: number, y: number, s: string, c: Rgb, scale = 2): void {
    let cx = x;
    for (const ch of s.toUpperCase()) {
      const rows = FONT[ch];
      if (rows !== undefined) {
        for (let r = 0; r < 7; r++) {
          for (let b = 0; b < 5; b++) {
            if (((rows[r] as number) >> (4 - b)) & 1) {
              for (let sx = 0; sx < scale; sx++) for (let sy = 0; sy < scale; sy++) this.set(cx + b * scale + sx, y + r * scale + sy, c);
            }
          }
        }
      }
      cx += 6 * scale;
    }
  }

  static textWidth(s: string, scale = 2): number {
    return s.length * 6 * scale - scale;
  }

  png(): Buffer {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(this.width, 0);
    ihdr.writeUInt32BE(this.height, 4);
    ihdr[8] = 8; // bit depth
    ihdr[9] = 2; // colour type: RGB
    const raw = Buffer.alloc((this.width * 3 + 1) * this.height);
    for (let y = 0; y < this.height; y++) {
      raw[y * (this.width * 3 + 1)] = 0; // filter: none
      raw.set(this.pixels.subarray(y * this.width * 3, (y + 1) * this.width * 3), y * (this.width * 3 + 1) + 1);
    }
    return Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', ihdr),
      chunk('IDAT', deflateSync(raw, { level: 9 })),
      chunk('IEND', new Uint8Array(0)),
    ]);
  }
}

export interface Series {
  name: string;
  color: Rgb;
  points: ReadonlyArray<readonly [number, number]>;
}

export interface Panel {
  /** Y axis label, e.g. "RSS MIB". */
  label: string;
  series: Series[];
  /** Y range; default: 0 .. max × 1.1. */
  yMin?: number;
  yMax?: number;
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  panels: Panel[];
  /** Dashed vertical markers (e.g. the end of the warm-up) at these x values, with a label. */
  markers?: Array<{ x: number; label: string }>;
  width?: number;
  panelHeight?: number;
  /** The end of the x axis (default: the largest x). */
  xMax?: number;
}

/** A "nice" step (1, 2, 2.5 or 5 × 10^k) for about `ticks` intervals over `span`. */
function niceStep(span: number, ticks: number): number {
  const raw = span / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

function fmt(v: number): string {
  if (Math.abs(v) >= 1000 && v % 1000 === 0) return `${v / 1000}K`;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

/** Stacked panels sharing one x axis. */
export function lineChart(spec: ChartSpec): Buffer {
  const width = spec.width ?? 1000;
  const ph = spec.panelHeight ?? 260;
  const left = 90;
  const right = 30;
  const top = 80;
  const gap = 80;
  const height = top + spec.panels.length * (ph + gap) + 40;
  const img = new Raster(width, height);
  const ink: Rgb = [30, 30, 30];
  const grid: Rgb = [225, 225, 225];
  spec.title.split('\n').forEach((line, i) => img.text(left, 10 + i * 20, line, ink, 2));
  const all = spec.panels.flatMap((p) => p.series.flatMap((s) => s.points.map((q) => q[0])));
  const xMin = Math.min(0, ...all);
  const xMax = spec.xMax ?? Math.max(1, ...all);
  const xs = (x: number): number => left + ((x - xMin) / (xMax - xMin)) * (width - left - right);
  const xStep = niceStep(xMax - xMin, 10);
  spec.panels.forEach((panel, k) => {
    const y0 = top + k * (ph + gap);
    const ys = panel.series.flatMap((s) => s.points.map((q) => q[1]));
    const yMin = panel.yMin ?? 0;
    const yMax = panel.yMax ?? Math.max(1, ...ys) * 1.1;
    const py = (y: number): number => y0 + ph - ((y - yMin) / (yMax - yMin)) * ph;
    const yStep = niceStep(yMax - yMin, 5);
    for (let v = Math.ceil(yMin / yStep) * yStep; v <= yMax; v += yStep) {
      img.line(left, py(v), width - right, py(v), grid);
      const label = fmt(v);
      img.text(left - 8 - Raster.textWidth(label), py(v) - 7, label, ink);
    }
    for (let v = Math.ceil(xMin / xStep) * xStep; v <= xMax; v += xStep) {
      img.line(xs(v), y0, xs(v), y0 + ph, grid);
      const label = fmt(v);
      img.text(xs(v) - Raster.textWidth(label) / 2, y0 + ph + 6, label, ink);
    }
    for (const m of spec.markers ?? []) {
      for (let y = y0; y < y0 + ph; y += 8) img.line(xs(m.x), y, xs(m.x), Math.min(y + 4, y0 + ph), [150, 150, 150], 2);
      if (k === 0) img.text(xs(m.x) + 6, y0 + 4, m.label, [110, 110, 110]);
    }
    img.line(left, y0, left, y0 + ph, ink, 2);
    img.line(left, y0 + ph, width - right, y0 + ph, ink, 2);
    img.text(left + 4, y0 - 20, panel.label, ink);
    let lx = left + Raster.textWidth(panel.label) + 40;
    for (const s of panel.series) {
      img.line(lx, y0 - 13, lx + 24, y0 - 13, s.color, 3);
      img.text(lx + 30, y0 - 20, s.name, s.color);
      lx += 30 + Raster.textWidth(s.name) + 30;
      const pts = s.points;
      for (let i = 1; i < pts.length; i++) {
        const a = pts[i - 1] as readonly [number, number];
        const b = pts[i] as readonly [number, number];
        img.line(xs(a[0]), py(a[1]), xs(b[0]), py(b[1]), s.color, 2);
      }
    }
  });
  const xl = spec.xLabel;
  img.text(width / 2 - Raster.textWidth(xl) / 2, height - 22, xl, ink);
  return img.png();
}

// 5×7 glyphs: seven rows, five bits each (bit 4 = leftmost column).
const FONT: Record<string, readonly number[]> = {
  '0': [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
  '1': [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
  '2': [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
  '3': [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
  '4': [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
  '5': [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
  '6': [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
  '7': [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
  '8': [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
  '9': [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
  A: [0x0e, 0x11, 0x11, 0x11, 0x1f, 0x11, 0x11],
  B: [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
  C: [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
  D: [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c],
  E: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f],
  F: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
  G: [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f],
  H: [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
  I: [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
  J: [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c],
  K: [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
  L: [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
  M: [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11],
  N: [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
  O: [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
  P: [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
  Q: [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d],
  R: [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
  S: [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e],
  T: [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
  U: [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
  V: [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04],
  W: [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a],
  X: [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
  Y: [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04],
  Z: [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f],
  '.': [0, 0, 0, 0, 0, 0x0c, 0x0c],
  ',': [0, 0, 0, 0, 0x0c, 0x04, 0x08],
  '-': [0, 0, 0, 0x1f, 0, 0, 0],
  ':': [0, 0x0c, 0x0c, 0, 0x0c, 0x0c, 0],
  '/': [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
  '(': [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
  ')': [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
  '%': [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
  '+': [0, 0x04, 0x04, 0x1f, 0x04, 0x04, 0],
  '=': [0, 0, 0x1f, 0, 0x1f, 0, 0],
  '<': [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
  '>': [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
  _: [0, 0, 0, 0, 0, 0, 0x1f],
};
