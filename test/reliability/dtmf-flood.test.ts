// Issue 12, item 7: a peer sending 20,000 DTMF digits in one second over a real Audiosocket connection. Digits
// beyond what a person can press are dropped and counted, so the flood makes a handful of LLM runs, not hundreds
// (it made 629 before); a normal key sequence before it is answered as usual.

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCaller } from '../helpers/caller.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';
import { WsTestClient, wsUrl } from '../helpers/ws-client.js';

let services: TestServices;
let t: TestApp;

beforeAll(async () => {
  services = await createTestServices();
  t = await startTestApp(services, { UNKNOWN_CALLS: 'accept', DEFAULT_STT_TYPE: '', DEFAULT_TTS_TYPE: '', AUDIOSOCKET_DTMF: 'turn' });
});

afterAll(async () => {
  await t?.stop();
  await services?.dropAll();
});

async function droppedDigits(): Promise<number> {
  const m = await t.metrics.inputDroppedTotal.get();
  return m.values.find((v) => v.labels['kind'] === 'dtmf')?.value ?? 0;
}

describe('a DTMF flood', () => {
  it('makes a handful of LLM runs, not hundreds', async () => {
    const id = randomUUID();
    const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, 8000);
    await caller.until(() => t.app.calls.session(id)?.sessionStarted === true, 'the call');
    const monitor = await WsTestClient.connect(wsUrl(t.app.addresses.http.port, id, '?mode=monitor'));
    try {
      const runs = (): number => monitor.ofType('bot-llm-started').length;
      const greeting = runs();

      // A person's key sequence is answered.
      for (const d of '12#') caller.client.sendDtmf(d);
      await monitor.until(() => monitor.botAnswers().some((a) => a.includes('You pressed 12')), 'the answer to 12#');
      const beforeFlood = runs();
      expect(beforeFlood).toBe(greeting + 1);
      await sleep(1_100);

      // 20,000 digits within about a second, '#' among them.
      const digits = '0123456789*#';
      for (let sent = 0; sent < 20_000; ) {
        for (let i = 0; i < 1_000; i++, sent++) caller.client.sendDtmf(digits[sent % digits.length] as string);
        await sleep(50);
      }
      // The DTMF turn timeout (2 s) lets the last collected digits go.
      await sleep(3_500);
      const floodRuns = runs() - beforeFlood;
      console.info(`DTMF flood: ${floodRuns} LLM runs for 20,000 digits; ${await droppedDigits()} digits dropped`);
      expect(floodRuns).toBeLessThanOrEqual(5);
      expect(await droppedDigits()).toBeGreaterThan(19_900);
      expect(t.app.calls.session(id)).toBeDefined();
    } finally {
      await monitor.close();
      await caller.hangup();
      await t.app.calls.terminate(id, 'stop');
    }
  }, 60_000);
});
