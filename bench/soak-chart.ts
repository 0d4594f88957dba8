// The soak's chart, from its results: RSS split into V8's committed heap and the rest (native: malloc arenas,
// ArrayBuffers, onnxruntime, sockets, code), and the V8 old generation after GC with external memory, against
// lifecycles. `npx tsx bench/soak-chart.ts results.json out.png` redraws it from a results file.

import { readFile, writeFile } from 'node:fs/promises';
import { lineChart } from './lib/png.js';
import type { GcPoint } from './soak-sampler.js';

const MiB = 1024 * 1024;

export interface ChartInput {
  lifecycles: number;
  seconds: number;
  options: { concurrency: number; warmUp: number };
  verdicts: { rssSlopeMiBPer1000: number; heapGrowthMiB: number };
  gcPoints: GcPoint[];
}

export function soakChart(r: ChartInput): Buffer {
  const pts = (y: (p: GcPoint) => number): Array<[number, number]> => r.gcPoints.map((p) => [p.lifecycles, y(p) / MiB]);
  const v = r.verdicts;
  return lineChart({
    title:
      `SOAK: ${r.lifecycles} CALL LIFECYCLES, ${r.options.concurrency} AT A TIME, ${(r.seconds / 60).toFixed(0)} MIN\n` +
      `AFTER WARM-UP: RSS SLOPE ${v.rssSlopeMiBPer1000.toFixed(3)} MIB PER 1000, HEAP ${v.heapGrowthMiB >= 0 ? '+' : ''}${v.heapGrowthMiB.toFixed(2)} MIB`,
    xMax: r.lifecycles,
    xLabel: 'LIFECYCLES (A POINT PER MAJOR GC: LOWEST HEAP BEFORE THE NEXT)',
    markers: r.options.warmUp > 0 ? [{ x: r.options.warmUp, label: 'END OF WARM-UP' }] : [],
    panels: [
      {
        label: 'MIB',
        series: [
          { name: 'RSS', color: [200, 40, 40], points: pts((p) => p.rssBytes) },
          { name: 'NATIVE (RSS - V8 HEAP)', color: [230, 140, 30], points: pts((p) => p.rssBytes - p.heapTotalBytes) },
          { name: 'V8 HEAP COMMITTED', color: [140, 60, 170], points: pts((p) => p.heapTotalBytes) },
        ],
      },
      {
        label: 'MIB',
        series: [
          { name: 'HEAP USED (OLD GEN)', color: [40, 90, 200], points: pts((p) => p.heapOldBytes) },
          { name: 'EXTERNAL', color: [40, 160, 90], points: pts((p) => p.externalBytes) },
        ],
      },
    ],
  });
}

if (process.argv[1]?.endsWith('soak-chart.ts') === true) {
  const [input, output] = process.argv.slice(2);
  if (input === undefined || output === undefined) {
    console.error('usage: npx tsx bench/soak-chart.ts results.json out.png');
    process.exitCode = 2;
  } else {
    const r = JSON.parse(await readFile(input, 'utf8')) as ChartInput;
    await writeFile(output, soakChart(r));
  }
}
