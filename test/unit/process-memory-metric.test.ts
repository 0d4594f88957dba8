// pipecat_manager_process_memory_bytes (issue 16): read at scrape time from process.memoryUsage() and V8.

import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics.js';

function sample(text: string, kind: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`pipecat_manager_process_memory_bytes{kind="${kind}"} `));
  if (line === undefined) throw new Error(`no process_memory_bytes sample of kind ${kind}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('process_memory_bytes', () => {
  it('reports the ArrayBuffers held at scrape time', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const held = new ArrayBuffer(8 * 1024 * 1024);
    new Uint8Array(held).fill(1);
    const text = await metrics.registry.metrics();
    const arrayBuffers = sample(text, 'array_buffers');
    expect(arrayBuffers).toBeGreaterThanOrEqual(held.byteLength);
    // Node counts ArrayBuffers inside external memory; both come from one memoryUsage() call per scrape.
    expect(sample(text, 'external')).toBeGreaterThanOrEqual(arrayBuffers);
    expect(sample(text, 'v8_malloced')).toBeGreaterThan(0);
    expect(held.byteLength).toBe(8 * 1024 * 1024);
  });
});
