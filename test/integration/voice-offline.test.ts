// The offline bot end to end (no key at all): Sphinx STT with a JSGF grammar, the echo LLM and espeak TTS, on a
// real recorded prompt over a real Audiosocket connection. The bot greets first, hears "hello world", answers.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ECHO_GREETING } from '../../src/providers/llm/echo.js';
import { TestCaller, loadPrompt } from '../helpers/caller.js';
import { RpcTestClient, type EventSubscription } from '../helpers/rpc-test-client.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';

let services: TestServices;
let t: TestApp;
let rpc: RpcTestClient;
let events: EventSubscription;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'jsgf-'));
  const grammar = join(dir, 'calls.gram');
  writeFileSync(grammar, '#JSGF V1.0;\ngrammar calls;\npublic <phrase> = hello world | thank you | goodbye | weasels have eaten our phone system;\n');
  services = await createTestServices();
  t = await startTestApp(services, { SPHINX_JSGF: grammar });
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  events = await rpc.subscribeEvents();
});

afterAll(async () => {
  await events?.close();
  await rpc?.close();
  await t?.stop();
  await services?.dropAll();
});

type Ev = { type: string; data: { pipecatcall_id?: string; id?: string; text?: string } };
const messages = (id: string): Array<[string, string]> =>
  (events.events as Ev[]).filter((e) => e.data.pipecatcall_id === id).map((e) => [e.type, e.data.text ?? '']);

describe('the offline bot', () => {
  it('greets, hears a real prompt through Sphinx and answers "You said: …" with audible espeak speech', async () => {
    const id = randomUUID();
    const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, 8000);
    try {
      // The greeting: spoken first, before the caller says anything.
      await caller.until(() => caller.voiced().length > 10, 'the greeting');
      await caller.until(() => {
        const v = caller.voiced();
        const last = v[v.length - 1];
        return last !== undefined && performance.now() - last.at > 700;
      }, 'the end of the greeting');
      const greetingFrames = caller.voiced().length;
      expect(greetingFrames).toBeGreaterThan(50);

      const spokeAt = performance.now();
      await caller.say(await loadPrompt('hello-world'));
      const speechEnd = performance.now();
      await caller.until(() => messages(id).filter(([type]) => type === 'message_bot_llm').length >= 2, 'the answer', 15_000);
      await caller.until(() => caller.voiced(speechEnd).length > 30, 'the spoken answer', 10_000);

      const msgs = messages(id);
      expect(msgs.filter(([type]) => type === 'message_bot_llm').map(([, text]) => text)).toEqual([
        ECHO_GREETING,
        'You said: hello world.',
      ]);
      expect(msgs).toContainEqual(['message_user_transcription', 'hello world']);
      const order = msgs.map(([type]) => type);
      const userAt = order.indexOf('message_user_transcription');
      expect(order.slice(userAt)).toEqual([
        'message_user_transcription',
        'message_user_llm',
        'message_bot_transcription',
        'message_bot_llm',
      ]);
      expect(order.slice(0, userAt).filter((x) => x === 'message_bot_transcription').length).toBeGreaterThanOrEqual(2);

      // The answer came back as paced 8 kHz frames, and none of it before the caller spoke.
      expect(new Set(caller.frames.map((f) => f.kind))).toEqual(new Set([0x10]));
      expect(new Set(caller.frames.map((f) => f.bytes))).toEqual(new Set([320]));
      const answer = caller.voiced(speechEnd);
      expect(answer.length).toBeGreaterThan(30);
      expect(caller.voiced(spokeAt).length).toBeGreaterThanOrEqual(answer.length);
      const gaps = answer.slice(1).map((f, i) => f.at - (answer[i] as { at: number }).at);
      gaps.sort((a, b) => a - b);
      expect(gaps[Math.floor(gaps.length / 2)]).toBeGreaterThan(15);
      expect(gaps[Math.floor(gaps.length / 2)]).toBeLessThan(25);
    } finally {
      await caller.hangup();
    }
  }, 40_000);
});
