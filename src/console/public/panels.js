// The console's instance panels: headroom sparklines (GET /api/headroom, polled every sample period) and past
// calls (GET /api/past-calls: newest first, paged, filtered by id / reference id / customer id).

import { drawTimeline, el, sparkline, timelineLegend } from './charts.js';

const $ = (id) => document.getElementById(id);
/** Samples kept on the page: 10 minutes at the daemon's 2 s period. */
const KEEP_SAMPLES = 300;
const CORE_COLORS = ['#2563eb', '#16a34a', '#ea580c', '#9333ea', '#0891b2', '#db2777', '#65a30d', '#ca8a04'];

// --- Headroom ------------------------------------------------------------------------------------------------

const CHARTS = [
  { key: 'calls', title: 'Live calls', unit: '', series: (s) => [{ values: s.map((x) => x.calls), color: '#2563eb' }], minMax: 1 },
  {
    key: 'admission',
    title: 'Admitted / refused per sample',
    unit: '',
    series: (s) => [
      { values: deltas(s, 'admitted'), color: '#16a34a' },
      { values: deltas(s, 'refused'), color: '#dc2626' },
    ],
    value: (s) => `${s.at(-1)?.admitted ?? 0} / ${s.at(-1)?.refused ?? 0} total`,
    minMax: 1,
  },
  { key: 'loop', title: 'Event-loop delay p99', unit: ' ms', series: (s) => [{ values: s.map((x) => x.loop_delay_p99_ms), color: '#9333ea' }], minMax: 20 },
  { key: 'late', title: 'Clock lateness p99', unit: ' ms', series: (s) => [{ values: s.map((x) => x.clock_late_p99_ms), color: '#ea580c' }], minMax: 5 },
  {
    key: 'cpu',
    title: 'CPU per core (machine) · daemon',
    unit: '',
    series: (s) => [
      ...(s.at(-1)?.core_busy ?? []).map((_, i) => ({ values: s.map((x) => (x.core_busy[i] ?? 0) * 100), color: CORE_COLORS[i % CORE_COLORS.length] })),
      { values: s.map((x) => x.process_cpu * 100), color: '#1d2430' },
    ],
    value: (s) => {
      const last = s.at(-1);
      return last ? `${last.core_busy.map((c) => `${Math.round(c * 100)}%`).join(' ')} · daemon ${Math.round(last.process_cpu * 100)}% of a core` : '–';
    },
    minMax: 100,
  },
];

function deltas(samples, key) {
  return samples.map((x, i) => (i === 0 ? null : x[key] - samples[i - 1][key]));
}

export class HeadroomPanel {
  constructor(container, fetchJson) {
    this.fetchJson = fetchJson;
    this.samples = [];
    this.charts = new Map();
    for (const c of CHARTS) {
      const box = document.createElement('div');
      box.className = 'spark';
      box.dataset.chart = c.key;
      box.innerHTML = '<div class="spark-head"><span class="title"></span><span class="value"></span></div>';
      box.querySelector('.title').textContent = c.title;
      const svg = el('svg', { class: 'spark-svg', preserveAspectRatio: 'none' }, box);
      container.append(box);
      this.charts.set(c.key, { def: c, box, svg });
    }
  }

  async poll() {
    const since = this.samples.at(-1)?.t ?? 0;
    let periodMs = 2000;
    try {
      const body = await this.fetchJson(`/api/headroom?since=${since}`);
      periodMs = body.sample_ms;
      this.samples.push(...body.samples);
      if (this.samples.length > KEEP_SAMPLES) this.samples.splice(0, this.samples.length - KEEP_SAMPLES);
      this.draw();
    } catch (err) {
      console.warn('headroom', err);
    } finally {
      setTimeout(() => void this.poll(), periodMs);
    }
  }

  draw() {
    const s = this.samples;
    for (const { def, box, svg } of this.charts.values()) {
      sparkline(svg, def.series(s), def.minMax);
      const last = s.at(-1);
      const fallback = last ? `${def.series([last])[0].values[0] ?? '–'}${def.unit}` : '–';
      box.querySelector('.value').textContent = def.value ? def.value(s) : fallback;
      box.dataset.samples = String(s.length);
    }
    $('headroom-window').textContent = s.length > 1 ? `last ${Math.round((s.at(-1).t - s[0].t) / 60000 * 10) / 10} min, ${s.length} samples` : 'collecting…';
  }
}

// --- Past calls ----------------------------------------------------------------------------------------------

const NIL = '00000000-0000-0000-0000-000000000000';
const uuidOrDash = (id) => (id === NIL ? '–' : id);

function providerError(e) {
  return e ? `${e.stage}_error · ${e.provider}: ${e.message}` : '';
}

export class PastCallsPanel {
  constructor(fetchJson) {
    this.fetchJson = fetchJson;
    this.cursors = [];
    this.next = null;
    this.filter = {};
    $('past-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const value = $('past-value').value.trim();
      this.filter = value ? { [$('past-field').value]: value } : {};
      this.cursors = [];
      void this.load();
    });
    $('past-clear').addEventListener('click', () => {
      $('past-value').value = '';
      this.filter = {};
      this.cursors = [];
      void this.load();
    });
    $('past-older').addEventListener('click', () => {
      if (!this.next) return;
      this.cursors.push(this.next);
      void this.load();
    });
    $('past-newer').addEventListener('click', () => {
      this.cursors.pop();
      void this.load();
    });
  }

  /** Reloads the first page, unless the operator is looking at an older one. */
  refresh() {
    if (this.cursors.length === 0) void this.load();
  }

  async load() {
    const q = new URLSearchParams({ limit: '10', ...this.filter, ...(this.cursors.at(-1) ?? {}) });
    $('past-status').textContent = 'loading…';
    try {
      const body = await this.fetchJson(`/api/past-calls?${q}`);
      this.next = body.next;
      this.render(body.calls);
      $('past-status').textContent = body.calls.length === 0 ? 'no ended calls match' : `page ${this.cursors.length + 1}`;
    } catch (err) {
      $('past-status').textContent = `error: ${err.message}`;
    }
    $('past-older').disabled = !this.next;
    $('past-newer').disabled = this.cursors.length === 0;
  }

  render(calls) {
    const tbody = $('past-rows');
    tbody.replaceChildren();
    for (const c of calls) {
      const tr = document.createElement('tr');
      tr.dataset.callId = c.id;
      const cells = [
        c.tm_delete.slice(0, 19),
        c.id,
        c.reference_type === '' ? '' : `${c.reference_type} ${uuidOrDash(c.reference_id)}`,
        uuidOrDash(c.customer_id),
        c.duration_seconds === null ? '–' : `${c.duration_seconds} s`,
        [c.stt_type, c.llm_type, c.tts_type].filter(Boolean).join(' / '),
        c.reason ?? '–',
      ];
      for (const [i, text] of cells.entries()) {
        const td = document.createElement('td');
        td.textContent = text;
        if (i === 1 || i === 2 || i === 3) td.className = 'mono';
        if (i === 6) td.className = 'reason';
        tr.append(td);
      }
      tbody.append(tr);
      if (c.provider_error) {
        const er = document.createElement('tr');
        er.className = 'past-error';
        er.innerHTML = '<td colspan="7"></td>';
        er.firstChild.textContent = providerError(c.provider_error);
        tbody.append(er);
      }
      if (c.turn_count) {
        tr.classList.add('expandable');
        tr.title = 'show the turn timeline';
        tr.addEventListener('click', () => void this.toggleTimeline(tr, c.id));
      }
    }
  }

  async toggleTimeline(tr, id) {
    const open = tr.nextElementSibling?.classList.contains('past-timeline') ? tr.nextElementSibling : null;
    if (open) {
      open.remove();
      return;
    }
    const row = document.createElement('tr');
    row.className = 'past-timeline';
    row.innerHTML = '<td colspan="7"></td>';
    tr.after(row);
    try {
      const body = await this.fetchJson(`/api/calls/${id}/turns`);
      const td = row.firstChild;
      td.append(timelineLegend());
      drawTimeline(el('svg', { class: 'timeline' }, td), body.turns, 50);
    } catch (err) {
      row.firstChild.textContent = `timeline: ${err.message}`;
    }
  }
}

export { providerError };
