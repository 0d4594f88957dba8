// Reading counters: from an App's registry in-process, or from the Prometheus text of a child daemon.

import type { Metrics } from '../../../src/metrics.js';

/** Sum of a metric's samples (optionally only those whose labels include `labels`). */
export async function metricSum(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  let sum = 0;
  for (const v of values) {
    const l = v.labels as Record<string, string | number | undefined>;
    if (Object.entries(labels).every(([k, want]) => String(l[k]) === want)) sum += v.value;
  }
  return sum;
}

/** Per-label-value totals of a counter with one label, e.g. audiosocket_protocol_errors_total by kind. */
export async function metricByLabel(metrics: Metrics, name: string, label: string): Promise<Map<string, number>> {
  const metric = metrics.registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  const out = new Map<string, number>();
  for (const v of (await metric.get()).values) {
    const key = String((v.labels as Record<string, string | number | undefined>)[label]);
    out.set(key, (out.get(key) ?? 0) + v.value);
  }
  return out;
}

/** Sum of the samples of `name` in Prometheus text whose label set contains every `labels` pair. */
export function textMetricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (m === null || m[1] !== name) continue;
    const set = m[3] ?? '';
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) sum += Number(m[4]);
  }
  return sum;
}
