// What the console's scripts share: the token and API helpers, the RTVI transcript renderer, frame parsing.

import { decodeFrame } from './frames.js';

export const token = new URLSearchParams(location.search).get('token') ?? '';

export const $ = (id) => document.getElementById(id);

export function apiHeaders(extra = {}) {
  return token ? { ...extra, authorization: `Bearer ${token}` } : extra;
}

export async function fetchJson(path) {
  const res = await fetch(path, { headers: apiHeaders() });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

export function wsUrl(id, mode) {
  const u = new URL(`/v1/pipecatcalls/${id}/ws`, location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (mode) u.searchParams.set('mode', mode);
  if (token) u.searchParams.set('token', token);
  return u.href;
}

/** Renders RTVI notices as a transcript: caller lines from final transcriptions, bot lines from LLM text. */
export class Transcript {
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
    p.dataset.at = String(Date.now());
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
export function onFrame(buffer, onMessage, onAudio) {
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
