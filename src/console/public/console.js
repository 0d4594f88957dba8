// The operator console's logic: polls GET /api/calls, opens a monitor WebSocket per call for its live transcript,
// stops calls, and runs the softphone (microphone → 20 ms s16le AudioRawFrames; bot frames played with Web Audio).

import { decodeFrame, encodeAudioFrame, encodeMessageFrame } from './frames.js';

const token = new URLSearchParams(location.search).get('token') ?? '';
const POLL_MS = 1000;
/** Ended calls stay on screen this long so their transcript can still be read. */
const KEEP_ENDED_MS = 60_000;
/** Bot audio is scheduled this far ahead of the audio clock: absorbs network jitter, adds that much delay. */
const PLAYOUT_DELAY_S = 0.08;

const $ = (id) => document.getElementById(id);

function apiHeaders(extra = {}) {
  return token ? { ...extra, authorization: `Bearer ${token}` } : extra;
}

function wsUrl(id, mode) {
  const u = new URL(`/v1/pipecatcalls/${id}/ws`, location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (mode) u.searchParams.set('mode', mode);
  if (token) u.searchParams.set('token', token);
  return u.href;
}

/** Renders RTVI notices as a transcript: caller lines from final transcriptions, bot lines from LLM text. */
class Transcript {
  constructor(el, speakingEl = null) {
    this.el = el;
    this.speakingEl = speakingEl;
    this.bot = null;
    this.interim = null;
    this.speaking = { user: false, bot: false };
  }

  line(cls, text) {
    const p = document.createElement('p');
    p.className = cls;
    p.textContent = text;
    const stick = this.el.scrollTop + this.el.clientHeight >= this.el.scrollHeight - 8;
    this.el.append(p);
    if (stick) this.el.scrollTop = this.el.scrollHeight;
    return p;
  }

  showSpeaking() {
    if (!this.speakingEl) return;
    const who = [this.speaking.user && 'caller speaking', this.speaking.bot && 'bot speaking'].filter(Boolean);
    this.speakingEl.textContent = who.join(' · ');
  }

  notice(msg) {
    const data = msg.data ?? {};
    switch (msg.type) {
      case 'user-transcription':
        if (data.final) {
          this.interim?.remove();
          this.interim = null;
          if (data.text) this.line('user', data.text);
        } else if (data.text) {
          this.interim ??= this.line('user interim', '');
          this.interim.textContent = data.text;
        }
        break;
      case 'bot-llm-started':
        this.bot = this.line('bot', '');
        break;
      case 'bot-llm-text':
        this.bot ??= this.line('bot', '');
        this.bot.textContent += data.text ?? '';
        break;
      case 'bot-llm-stopped':
        if (this.bot && this.bot.textContent === '') this.bot.remove();
        this.bot = null;
        break;
      case 'user-started-speaking':
      case 'user-stopped-speaking':
        this.speaking.user = msg.type === 'user-started-speaking';
        this.showSpeaking();
        break;
      case 'bot-started-speaking':
      case 'bot-stopped-speaking':
        this.speaking.bot = msg.type === 'bot-started-speaking';
        this.showSpeaking();
        break;
      case 'error':
      case 'error-response':
        this.line('error', data.message ?? data.error ?? 'error');
        break;
      default:
        break;
    }
  }
}

/** Parses one binary WebSocket message; RTVI messages go to `onMessage`, audio frames to `onAudio`. */
function onFrame(buffer, onMessage, onAudio) {
  let frame;
  try {
    frame = decodeFrame(new Uint8Array(buffer));
  } catch (err) {
    console.warn('undecodable frame', err);
    return;
  }
  if (frame.type === 'message') {
    try {
      onMessage(JSON.parse(frame.data));
    } catch (err) {
      console.warn('bad message frame', err);
    }
  } else if (frame.type === 'audio' && onAudio) onAudio(frame);
}

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
    <div class="transcript"></div>
    <div class="row" style="margin-top:.4rem"><button class="danger stop">Stop</button><span class="muted age"></span></div>`;
  el.querySelector('.id').textContent = call.id;
  el.querySelector('.stop').addEventListener('click', () => stopCall(call.id, el.querySelector('.stop')));
  $('calls').append(el);
  const card = { el, transcript: new Transcript(el.querySelector('.transcript'), el.querySelector('.speaking')), ws: null, endedAt: 0 };
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
}

function markEnded(id, card) {
  if (card.endedAt) return;
  card.endedAt = Date.now();
  card.el.classList.add('ended');
  const state = card.el.querySelector('.state');
  state.textContent = 'ended';
  state.className = 'state ended';
  card.el.querySelector('.stop').disabled = true;
  card.ws?.close();
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

// --- Softphone -----------------------------------------------------------------------------------------------

let phone = null;

function setStatus(text) {
  $('softphone-status').textContent = text;
}

async function startCall() {
  $('call-button').disabled = true;
  $('softphone-transcript').replaceChildren();
  $('bot-frames').textContent = '0';
  let ctx = null;
  let stream = null;
  try {
    // The AudioContext is made inside the click (browsers only start audio after a user gesture). 16 kHz when the
    // browser allows it (no resampling either way); otherwise frames go at the context's rate and the daemon
    // resamples them.
    try {
      ctx = new AudioContext({ sampleRate: 16000 });
    } catch {
      ctx = new AudioContext();
    }
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    setStatus('creating a call…');
    const res = await fetch('/api/calls', { method: 'POST', headers: apiHeaders({ 'content-type': 'application/json' }), body: '{}' });
    const call = await res.json();
    if (!res.ok) throw new Error(call.error ?? res.statusText);
    await ctx.audioWorklet.addModule('mic-worklet.js');
    phone = { ctx, stream, id: call.id, ws: null, nextPlay: 0, frames: 0, sent: 0, node: null };
    connectPhone(phone);
  } catch (err) {
    setStatus(`failed: ${err.message}`);
    if (phone === null) {
      for (const t of stream?.getTracks() ?? []) t.stop();
      void ctx?.close();
    }
    hangUp();
  }
}

function connectPhone(p) {
  const transcript = new Transcript($('softphone-transcript'), $('softphone-speaking'));
  const ws = new WebSocket(wsUrl(p.id, 'media'));
  ws.binaryType = 'arraybuffer';
  p.ws = ws;
  ws.onopen = () => {
    setStatus(`in call ${p.id}`);
    $('hangup-button').disabled = false;
    ws.send(encodeMessageFrame(JSON.stringify({ label: 'rtvi-ai', type: 'client-ready', id: 'ready-1' })));
    const source = p.ctx.createMediaStreamSource(p.stream);
    const node = new AudioWorkletNode(p.ctx, 'mic-capture');
    node.port.onmessage = (ev) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      p.sent++;
      ws.send(encodeAudioFrame({ id: p.sent, audio: new Uint8Array(ev.data), sampleRate: p.ctx.sampleRate, numChannels: 1 }));
    };
    // Through a muted gain to the destination: a node nothing pulls from is not processed by every browser.
    const mute = p.ctx.createGain();
    mute.gain.value = 0;
    source.connect(node).connect(mute).connect(p.ctx.destination);
    p.node = node;
  };
  ws.onmessage = (ev) =>
    onFrame(
      ev.data,
      (msg) => transcript.notice(msg),
      (frame) => play(p, frame),
    );
  ws.onclose = (ev) => {
    if (phone === p) {
      setStatus(`call ended${ev.reason ? `: ${ev.reason}` : ''}`);
      hangUp();
    }
  };
}

/** Schedules one bot frame (s16le at frame.sampleRate) right after the previous one on the audio clock. */
function play(p, frame) {
  const n = frame.audio.byteLength >> 1;
  if (n === 0) return;
  const view = new DataView(frame.audio.buffer, frame.audio.byteOffset, n * 2);
  const buffer = p.ctx.createBuffer(1, n, frame.sampleRate || 16000);
  const out = buffer.getChannelData(0);
  for (let i = 0; i < n; i++) out[i] = view.getInt16(i * 2, true) / 32768;
  const src = p.ctx.createBufferSource();
  src.buffer = buffer;
  src.connect(p.ctx.destination);
  const now = p.ctx.currentTime;
  if (p.nextPlay < now) p.nextPlay = now + PLAYOUT_DELAY_S;
  src.start(p.nextPlay);
  p.nextPlay += buffer.duration;
  p.frames++;
  $('bot-frames').textContent = String(p.frames);
}

function hangUp() {
  const p = phone;
  phone = null;
  $('call-button').disabled = false;
  $('hangup-button').disabled = true;
  $('softphone-speaking').textContent = '';
  if (!p) return;
  p.node?.port.close();
  p.ws?.close();
  for (const t of p.stream.getTracks()) t.stop();
  void p.ctx.close();
}

$('call-button').addEventListener('click', () => void startCall());
$('hangup-button').addEventListener('click', () => {
  setStatus('hung up');
  hangUp();
});

void poll();
