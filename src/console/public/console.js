// The operator console's logic: polls GET /api/calls, opens a monitor WebSocket per call for its live transcript,
// draws each call's turn timeline and level meters, marks barge-ins in the transcript, shows provider errors,
// stops calls, and runs the softphone (microphone → 20 ms s16le AudioRawFrames; bot frames played with Web Audio).
// The headroom and past-calls panels are in panels.js, the SVG drawing in charts.js.

import { drawTimeline, el as svgEl, setMeter, timelineLegend } from './charts.js';
import { $, Transcript, apiHeaders, fetchJson, onFrame, wsUrl } from './common.js';
import { HeadroomPanel, PastCallsPanel, providerError } from './panels.js';
import './softphone.js';

const POLL_MS = 1000;
/** Level meters are refreshed this often (one small request for every live call). */
const LEVELS_MS = 500;
/** Ended calls stay on screen this long so their transcript can still be read. */
const KEEP_ENDED_MS = 60_000;

// --- Live calls ----------------------------------------------------------------------------------------------

const cards = new Map();

function fmtMs(seconds) {
  return typeof seconds === 'number' ? `${Math.round(seconds * 1000)} ms` : '–';
}

function createCard(call) {
  const el = document.createElement('div');
  el.className = 'call';
  el.dataset.callId = call.id;
  el.innerHTML = `
    <div class="row"><span class="id"></span><span class="state"></span><span class="muted providers"></span>
      <span class="speaking"></span></div>
    <div class="latency"></div>
    <div class="meters"><span class="meter caller"><em>caller</em><span class="track"><b></b></span><span class="db">–</span></span>
      <span class="meter bot"><em>bot</em><span class="track"><b></b></span><span class="db">–</span></span></div>
    <div class="provider-error"></div>
    <div class="transcript"></div>
    <details class="turns" open><summary>Turn timeline</summary></details>
    <div class="row" style="margin-top:.4rem"><button class="danger stop">Stop</button><span class="muted age"></span>
      <span class="end-reason"></span></div>`;
  el.querySelector('.id').textContent = call.id;
  const turns = el.querySelector('.turns');
  turns.append(timelineLegend());
  const timeline = svgEl('svg', { class: 'timeline' }, turns);
  el.querySelector('.stop').addEventListener('click', () => stopCall(call.id, el.querySelector('.stop')));
  $('calls').append(el);
  const card = {
    el,
    transcript: new Transcript(el.querySelector('.transcript'), el.querySelector('.speaking')),
    ws: null,
    endedAt: 0,
    timeline,
    /** The call's turn timelines by index, and the JSON of the latest (to redraw only on a change). */
    turns: new Map(),
    lastTurnJson: '',
    turnsLoaded: false,
    turnsLoading: false,
    interruptionsSeen: 0,
  };
  cards.set(call.id, card);
  openMonitor(call.id, card);
  return card;
}

function openMonitor(id, card) {
  const ws = new WebSocket(wsUrl(id, 'monitor'));
  ws.binaryType = 'arraybuffer';
  ws.onmessage = (ev) => onFrame(ev.data, (msg) => card.transcript.notice(msg));
  ws.onclose = () => {
    card.ws = null;
  };
  card.ws = ws;
}

function updateCard(card, call) {
  const { el } = card;
  const state = el.querySelector('.state');
  state.textContent = call.state;
  state.className = `state ${call.state}`;
  el.querySelector('.providers').textContent = `${call.transport} · ${[call.stt_type, call.llm_type, call.tts_type].filter(Boolean).join(' / ')}`;
  const l = call.latency ?? {};
  el.querySelector('.latency').textContent =
    `STT final ${fmtMs(l.stt_final)} · LLM first token ${fmtMs(l.llm_ttft)} · TTS first audio ${fmtMs(l.tts_ttfb)} · voice to voice ${fmtMs(l.voice_to_voice)}`;
  el.querySelector('.age').textContent = `${Math.round(call.age_seconds)} s`;
  const error = el.querySelector('.provider-error');
  error.textContent = providerError(call.provider_error);
  error.classList.toggle('shown', Boolean(call.provider_error));
  markInterruptions(card, call.interruptions, serverOffset);
  updateTurns(call, card);
}

/**
 * The poll carries each call's latest turn; the card keeps the earlier ones. The list is fetched once, and the
 * missed turns only when a turn went by between two polls: a console costs the daemon about one request a second.
 */
function updateTurns(call, card) {
  const last = call.last_turn;
  if (!last || card.turnsLoading) return;
  const known = Math.max(0, ...card.turns.keys());
  if (!card.turnsLoaded || last.index > known + 1) {
    // The first time, only the turns the card draws (the latest 20); after a gap, the ones missed.
    void loadTurns(call.id, card, card.turnsLoaded ? known : Math.max(0, last.index - 20));
    card.turnsLoaded = true;
    return;
  }
  const json = JSON.stringify(last);
  if (json === card.lastTurnJson) return;
  card.lastTurnJson = json;
  card.turns.set(last.index, last);
  if (card.turns.size > 20) card.turns.delete(card.turns.keys().next().value);
  drawTimeline(card.timeline, [...card.turns.values()]);
}

/** Fetches the call's turns after index `after` (all with 0) into the card, and redraws. */
async function loadTurns(id, card, after) {
  card.turnsLoading = true;
  try {
    const body = await fetchJson(`/api/calls/${id}/turns?after=${after}`);
    for (const t of body.turns) card.turns.set(t.index, t);
    // Only the turns drawn are kept: the card shows the latest few.
    for (const index of [...card.turns.keys()].sort((a, b) => a - b).slice(0, -20)) card.turns.delete(index);
    drawTimeline(card.timeline, [...card.turns.values()].sort((a, b) => a.index - b.index));
  } catch (err) {
    card.turnsLoaded = false;
    console.warn('turns', err);
  } finally {
    card.turnsLoading = false;
  }
}

const words = (text) => text.toLowerCase().replace(/[^\p{L}\p{N}\s]/gu, ' ').split(/\s+/).filter(Boolean);

/**
 * The bot line `i` interrupted: the latest one whose text begins with what was heard; when nothing was heard, the
 * latest one before the barge-in.
 */
function interruptedLine(card, i, at) {
  const bots = [...card.el.querySelectorAll('.transcript p.bot:not(.cut):not(.paused)')];
  const heard = words(i.heard);
  if (heard.length > 0) {
    // A reply the console did not see (its monitor joined later, or the greeting) has no line to mark.
    return bots.filter((p) => words(p.firstChild?.textContent ?? '').slice(0, heard.length).join(' ') === heard.join(' ')).at(-1) ?? null;
  }
  return bots.filter((p) => Number(p.dataset.at) <= at).at(-1) ?? null;
}

/**
 * Marks the bot line each barge-in cut (or paused) with what the caller had heard of it. A reply the console did
 * not see (its monitor joined later) gets a marker line at the barge-in's place. `offset` maps the daemon's clock
 * onto the page's.
 */
function markInterruptions(card, list, offset) {
  const seen = list.length < card.interruptionsSeen ? 0 : card.interruptionsSeen;
  for (const i of list.slice(seen)) {
    const at = i.at - offset;
    const text =
      i.kind === 'confirmed' ? `✂ interrupted by the caller — heard: “${i.heard || '(nothing yet)'}”` : '‖ paused for the caller (a false barge-in), then resumed';
    const mark = document.createElement('span');
    mark.className = 'mark';
    mark.textContent = text;
    const line = interruptedLine(card, i, at);
    if (line) {
      line.classList.add(i.kind === 'confirmed' ? 'cut' : 'paused');
      line.append(mark);
      continue;
    }
    const p = document.createElement('p');
    p.className = `bot ${i.kind === 'confirmed' ? 'cut' : 'paused'} unseen`;
    p.dataset.at = String(at);
    p.append(mark);
    // Before the caller's words that interrupted it (a confirmed one), else where the barge-in happened.
    const box = card.el.querySelector('.transcript');
    const cause = i.kind === 'confirmed' ? [...box.querySelectorAll('p.user:not(.interim)')].filter((c) => Number(c.dataset.at) <= at).at(-1) : null;
    box.insertBefore(p, cause ?? [...box.children].find((c) => Number(c.dataset.at) > at) ?? null);
  }
  card.interruptionsSeen = list.length;
}

function markEnded(id, card) {
  if (card.endedAt) return;
  card.endedAt = Date.now();
  card.el.classList.add('ended');
  const state = card.el.querySelector('.state');
  state.textContent = 'ended';
  state.className = 'state ended';
  card.el.querySelector('.stop').disabled = true;
  card.el.querySelector('.speaking').textContent = '';
  for (const m of card.el.querySelectorAll('.meter')) setMeter(m, null);
  card.ws?.close();
  pastCalls.refresh();
  void showEnd(id, card);
}

/** Why the call ended, and its provider error (it may have failed between two polls), from the ended calls. */
async function showEnd(id, card) {
  try {
    const { calls } = await fetchJson(`/api/past-calls?limit=1&id=${id}`);
    const ended = calls[0];
    if (!ended) return;
    card.el.querySelector('.end-reason').textContent = ended.reason ? `ended by ${ended.reason}` : '';
    if (ended.provider_error) {
      const error = card.el.querySelector('.provider-error');
      error.textContent = providerError(ended.provider_error);
      error.classList.add('shown');
    }
  } catch (err) {
    console.warn('end of call', err);
  }
}

let serverOffset = 0;

async function pollLevels() {
  try {
    if (cards.size > 0) {
      const { levels } = await fetchJson('/api/levels');
      for (const [id, [caller, bot]] of Object.entries(levels)) {
        const card = cards.get(id);
        if (!card || card.endedAt) continue;
        setMeter(card.el.querySelector('.meter.caller'), caller);
        setMeter(card.el.querySelector('.meter.bot'), bot);
      }
    }
  } catch (err) {
    console.warn('levels', err);
  } finally {
    setTimeout(() => void pollLevels(), LEVELS_MS);
  }
}

async function stopCall(id, button) {
  button.disabled = true;
  try {
    const res = await fetch(`/api/calls/${id}/stop`, { method: 'POST', headers: apiHeaders({ 'content-type': 'application/json' }) });
    if (!res.ok) throw new Error((await res.json()).error ?? res.statusText);
  } catch (err) {
    button.disabled = false;
    alert(`Could not stop the call: ${err.message}`);
  }
}

async function poll() {
  try {
    const res = await fetch('/api/calls', { headers: apiHeaders() });
    if (!res.ok) throw new Error(res.status === 401 ? 'unauthorized: open the console with ?token=…' : `HTTP ${res.status}`);
    const body = await res.json();
    serverOffset = body.now - Date.now();
    $('host-id').textContent = body.host_id;
    $('api-status').textContent = '';
    const seen = new Set();
    for (const call of body.calls) {
      seen.add(call.id);
      updateCard(cards.get(call.id) ?? createCard(call), call);
    }
    for (const [id, card] of cards) {
      if (seen.has(id)) continue;
      markEnded(id, card);
      if (Date.now() - card.endedAt > KEEP_ENDED_MS) {
        card.el.remove();
        cards.delete(id);
      }
    }
  } catch (err) {
    $('api-status').textContent = `API: ${err.message}`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

const pastCalls = new PastCallsPanel(fetchJson);
new HeadroomPanel($('sparks'), fetchJson).poll();
void pastCalls.load();
void poll();
void pollLevels();
