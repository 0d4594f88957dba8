// The soak's PNG chart (bench/lib/png.ts): the file is a valid PNG (signature, chunk CRCs, zlib IDAT) whose pixels
// are the ones drawn, and the chart draws its series in their colours.

import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Raster, lineChart } from '../../bench/lib/png.js';

/** CRC-32 (IEEE), bit by bit: an implementation independent of the encoder's table. */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function decode(png: Buffer): { width: number; height: number; pixel: (x: number, y: number) => number[] } {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let off = 8;
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  const types: string[] = [];
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const type = png.toString('latin1', off + 4, off + 8);
    const data = png.subarray(off + 8, off + 8 + len);
    expect(png.readUInt32BE(off + 8 + len), `CRC of ${type}`).toBe(crc32(png.subarray(off + 4, off + 8 + len)));
    types.push(type);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect([data[8], data[9], data[10], data[11], data[12]]).toEqual([8, 2, 0, 0, 0]);
    }
    if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  expect(types[0]).toBe('IHDR');
  expect(types[types.length - 1]).toBe('IEND');
  const raw = inflateSync(Buffer.concat(idat));
  expect(raw.length).toBe((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) expect(raw[y * (width * 3 + 1)], `filter byte of row ${y}`).toBe(0);
  return {
    width,
    height,
    pixel: (x, y) => {
      const row = y * (width * 3 + 1);
      return [...raw.subarray(row + 1 + x * 3, row + 4 + x * 3)];
    },
  };
}

describe('bench/lib/png', () => {
  it('encodes the raster it was given', () => {
    const r = new Raster(5, 3, [10, 20, 30]);
    r.set(0, 0, [255, 0, 0]);
    r.set(4, 2, [0, 255, 0]);
    r.set(9, 9, [1, 1, 1]); // outside: ignored
    const img = decode(r.png());
    expect([img.width, img.height]).toEqual([5, 3]);
    expect(img.pixel(0, 0)).toEqual([255, 0, 0]);
    expect(img.pixel(4, 2)).toEqual([0, 255, 0]);
    expect(img.pixel(2, 1)).toEqual([10, 20, 30]);
  });

  it('draws text in the 5×7 font and leaves unknown characters blank', () => {
    const r = new Raster(20, 10);
    r.text(0, 0, '1', [0, 0, 0], 1);
    const img = decode(r.png());
    // "1": row 0 is 00100, row 6 is 01110.
    expect(img.pixel(2, 0)).toEqual([0, 0, 0]);
    expect(img.pixel(0, 0)).toEqual([255, 255, 255]);
    expect(img.pixel(1, 6)).toEqual([0, 0, 0]);
    const blank = new Raster(10, 10);
    blank.text(0, 0, '\u2603', [0, 0, 0], 1);
    expect(blank.png().equals(new Raster(10, 10).png())).toBe(true);
  });

  it('draws each series of a chart in its colour', () => {
    const png = lineChart({
      title: 'TEST',
      xLabel: 'X',
      width: 400,
      panelHeight: 100,
      panels: [
        { label: 'A', series: [{ name: 'UP', color: [200, 0, 0], points: [[0, 0], [10, 10]] }] },
        { label: 'B', series: [{ name: 'FLAT', color: [0, 0, 200], points: [[0, 5], [10, 5]] }] },
      ],
    });
    const img = decode(png);
    expect(img.width).toBe(400);
    const counts = { red: 0, blue: 0 };
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < img.width; x++) {
        const [r, g, b] = img.pixel(x, y) as [number, number, number];
        if (r === 200 && g === 0 && b === 0) counts.red++;
        if (r === 0 && g === 0 && b === 200) counts.blue++;
      }
    }
    // Each line spans the plot width (≈ 280 px) at 2 px, plus its legend.
    expect(counts.red).toBeGreaterThan(500);
    expect(counts.blue).toBeGreaterThan(500);
  });
});
