// Inline SVG drawn by the page, no chart library: a call's turn timeline (one row per turn, one bar per stage on
// a shared time axis, barge-ins as markers), sparklines for the headroom view, and level meters.

const NS = 'http://www.w3.org/2000/svg';

export function el(tag, attrs = {}, parent = null, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  parent?.append(node);
  return node;
}

/** The stages in drawing order (the API's TIMELINE_STAGES), with their colour and label. */
export const STAGES = [
  ['speech', '#14b8a6', 'caller speech'],
  ['vad_stop', '#94a3b8', 'VAD stop'],
  ['stt_final', '#f59e0b', 'STT final'],
  ['turn_end', '#a855f7', 'turn end'],
  ['llm_first_token', '#ef4444', 'LLM first token'],
  ['tts_first_audio', '#3b82f6', 'TTS first audio'],
  ['first_bot_frame', '#1d2430', 'first bot frame'],
];
const STAGE = Object.fromEntries(STAGES.map(([k, color, label]) => [k, { color, label }]));

const LABEL_W = 96;
const WIDTH = 500;
const LANE = 7;
const ROW_PAD = 8;
const ROW_H = STAGES.length * LANE + ROW_PAD;

/** The colour legend of the timeline, as HTML. */
export function timelineLegend() {
  const div = document.createElement('div');
  div.className = 'legend';
  for (const [, color, label] of STAGES) {
    const s = document.createElement('span');
    s.innerHTML = '<i></i>';
    s.firstChild.style.background = color;
    s.append(label);
    div.append(s);
  }
  const b = document.createElement('span');
  b.innerHTML = '<i class="barge"></i>barge-in (dashed: false)';
  div.append(b);
  return div;
}

function ms(v) {
  return `${Math.round(v)} ms`;
}

/**
 * Draws `turns` (the API's TurnTimeline list, oldest first) into `svg`: the latest `maxRows` turns, one
 * `g.turn-row` each. All rows share one scale, so a slow turn is visibly longer and its long bar names the stage.
 */
export function drawTimeline(svg, turns, maxRows = 8) {
  svg.replaceChildren();
  const shown = turns.slice(-maxRows);
  const span = Math.max(500, ...shown.flatMap((t) => [...t.bars.map((b) => b.to), t.barge_in?.at ?? 0]));
  const scale = (WIDTH - LABEL_W - 8) / span;
  const height = Math.max(1, shown.length) * ROW_H + 14;
  svg.setAttribute('viewBox', `0 0 ${WIDTH} ${height}`);
  svg.setAttribute('height', String(height));
  // Axis: 0 and the span, with a tick every "round" interval.
  const step = [100, 250, 500, 1000, 2000, 5000, 10000].find((s) => span / s <= 6) ?? 20000;
  for (let t = 0; t <= span; t += step) {
    const x = LABEL_W + t * scale;
    el('line', { x1: x, x2: x, y1: 0, y2: height - 12, class: 'grid' }, svg);
    el('text', { x, y: height - 2, class: 'tick', 'text-anchor': 'middle' }, svg, t >= 1000 ? `${t / 1000} s` : `${t}`);
  }
  shown.forEach((turn, row) => {
    const y0 = row * ROW_H + 2;
    const g = el('g', { class: 'turn-row', 'data-turn': turn.index }, svg);
    const v2v = turn.voice_to_voice_ms === null ? '' : ` · ${ms(turn.voice_to_voice_ms)}`;
    el('text', { x: 0, y: y0 + ROW_H / 2, class: 'turn-label' }, g, `#${turn.index}${v2v}`);
    el('title', {}, g, `turn ${turn.index}${turn.text ? `: “${turn.text}”` : ''}${turn.ending ? ` (${turn.ending})` : ''}`);
    for (const bar of turn.bars) {
      const lane = STAGES.findIndex(([k]) => k === bar.stage);
      const x = LABEL_W + bar.from * scale;
      const w = Math.max(1.5, (bar.to - bar.from) * scale);
      const rect = el('rect', { x, y: y0 + lane * LANE, width: w, height: LANE - 1, rx: 1, fill: STAGE[bar.stage].color, class: 'stage-bar', 'data-stage': bar.stage, 'data-from': bar.from }, g);
      el('title', {}, rect, `${STAGE[bar.stage].label}: ${ms(bar.to - bar.from)} (at ${ms(bar.from)}–${ms(bar.to)})`);
    }
    if (turn.barge_in) {
      const x = LABEL_W + turn.barge_in.at * scale;
      const line = el('line', { x1: x, x2: x, y1: y0 - 1, y2: y0 + ROW_H - ROW_PAD + 1, class: `barge ${turn.barge_in.kind}`, 'data-kind': turn.barge_in.kind }, g);
      el('title', {}, line, `barge-in (${turn.barge_in.kind}) at ${ms(turn.barge_in.at)}`);
    }
  });
}

/**
 * A sparkline of `series` ([{values, color}], each value a number or null) in a fixed-size SVG, on a shared y
 * range from 0 to at least `minMax`. Returns the largest value drawn.
 */
export function sparkline(svg, series, minMax = 1, width = 220, height = 44) {
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const all = series.flatMap((s) => s.values.filter((v) => typeof v === 'number'));
  const max = Math.max(minMax, ...all);
  const n = Math.max(2, ...series.map((s) => s.values.length));
  for (const s of series) {
    const pts = [];
    s.values.forEach((v, i) => {
      if (typeof v !== 'number') return;
      pts.push(`${((i + n - s.values.length) / (n - 1)) * width},${height - 2 - (v / max) * (height - 4)}`);
    });
    if (pts.length > 0) el('polyline', { points: pts.join(' '), fill: 'none', stroke: s.color, 'stroke-width': 1.5, 'data-points': pts.length }, svg);
  }
  return max;
}

/** A level meter bar: `db` (dBFS, or null) mapped from -60..0 dB onto the element's width. */
export function setMeter(meter, db) {
  const share = db === null ? 0 : Math.min(1, Math.max(0, (db + 60) / 60));
  meter.querySelector('b').style.width = `${Math.round(share * 100)}%`;
  meter.querySelector('.db').textContent = db === null ? '–' : `${Math.round(db)} dB`;
  meter.dataset.db = db === null ? '' : String(db);
}
