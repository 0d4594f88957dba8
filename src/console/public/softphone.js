// The console's softphone: a new call through the operator's microphone (20 ms s16le AudioRawFrames over the
// call's media WebSocket), the bot's frames played with Web Audio, the call's transcript beside it.

import { $, Transcript, apiHeaders, onFrame, wsUrl } from './common.js';
import { encodeAudioFrame, encodeMessageFrame } from './frames.js';

/** Bot audio is scheduled this far ahead of the audio clock: absorbs network jitter, adds that much delay. */
const PLAYOUT_DELAY_S = 0.08;

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
