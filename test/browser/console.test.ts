// The operator console in Debian's chromium (playwright-core): a softphone call whose fake microphone says "hello
// world" is listed with its transcript and latency, gets a spoken answer, and is ended with the stop button.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { encodeWav } from '../../src/audio/wav.js';
import { loadPrompt } from '../helpers/caller.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'console-browser-secret';

let services: TestServices;
let t: TestApp;
let browser: Browser;
const pageErrors: string[] = [];

/** 16 kHz mono: 1.5 s of silence, "hello world", 3.5 s of silence. Chromium loops the file as the microphone. */
async function fakeMicrophoneWav(dir: string): Promise<string> {
  const speech = await loadPrompt('hello-world', 16000);
  const pcm = Buffer.concat([Buffer.alloc(16000 * 2 * 1.5), speech, Buffer.alloc(16000 * 2 * 3.5)]);
  const path = join(dir, 'hello-world-16k.wav');
  writeFileSync(path, encodeWav(pcm, 16000));
  return path;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`the browser test needs Debian's chromium at ${CHROMIUM}: run \`apt-get update && apt-get install -y chromium\` (.ci/run installs it)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'console-browser-'));
  const grammar = join(dir, 'calls.gram');
  writeFileSync(grammar, '#JSGF V1.0;\ngrammar calls;\npublic <phrase> = hello world | thank you | goodbye | weasels have eaten our phone system;\n');
  const [wav, svc] = await Promise.all([fakeMicrophoneWav(dir), createTestServices()]);
  services = svc;
  const [app, b] = await Promise.all([
    startTestApp(services, { SPHINX_JSGF: grammar, HTTP_AUTH_TOKEN: TOKEN }),
    chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--headless',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--use-fake-ui-for-media-stream',
        '--use-fake-device-for-media-stream',
        `--use-file-for-fake-audio-capture=${wav}`,
      ],
    }),
  ]);
  t = app;
  browser = b;
});

afterAll(async () => {
  await browser?.close();
  await t?.stop();
  await services?.dropAll();
});

/**
 * Polls an element's text from the test side. Locators run in Playwright's own script world, so the page's
 * Content-Security-Policy (no eval) stays in force and is tested too.
 */
async function waitForText(page: Page, selector: string, accept: (text: string) => boolean, what: string, timeout = 20_000): Promise<string> {
  const end = performance.now() + timeout;
  for (;;) {
    const el = page.locator(selector).first();
    const last = (await el.count()) > 0 ? ((await el.textContent()) ?? '') : '';
    if (accept(last)) return last;
    if (performance.now() > end) {
      throw new Error(`timed out waiting for ${what}: ${selector} has ${JSON.stringify(last.slice(-300))} (page errors: ${JSON.stringify(pageErrors)})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the operator console', () => {
  it('lists a softphone call with its live transcript and latency; the fake microphone gets a spoken answer', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
    await page.goto(`http://127.0.0.1:${t.app.addresses.http.port}/?token=${TOKEN}`);
    await waitForText(page, '#host-id', (x) => x === '127.0.0.1', 'the console to reach the API');

    await page.click('#call-button');
    await waitForText(page, '#softphone-status', (x) => x.startsWith('in call'), 'the softphone call');
    const calls = [...t.app.calls.sessions()];
    expect(calls).toHaveLength(1);
    const id = calls[0]?.id ?? '';
    expect(calls[0]?.transport).toBe('websocket');

    // The console found the call and follows it over its own monitor WebSocket.
    const card = `.call[data-call-id="${id}"]`;
    await waitForText(page, `${card} .state`, (x) => x === 'live', 'the call card');
    // The softphone's media socket hears the call from its start (the greeting); the console's monitor joins at its
    // next poll, so it shows what was said from then on.
    await waitForText(page, '#softphone-transcript', (x) => x.includes('Hello! This is the echo bot.'), 'the greeting on the softphone');
    const answered = (x: string): boolean => x.includes('You said: hello world.');
    await waitForText(page, `${card} .transcript`, answered, 'the answer to the fake microphone in the console', 30_000);
    await waitForText(page, '#softphone-transcript', answered, 'the answer on the softphone');
    // The answer is spoken: its text comes first, then the page receives (and schedules for playback) its audio.
    const framesAtAnswer = Number(await page.locator('#bot-frames').textContent());
    await waitForText(page, '#bot-frames', (x) => Number(x) > framesAtAnswer + 40, 'the spoken answer');
    expect(framesAtAnswer).toBeGreaterThan(25); // the greeting was heard too
    await waitForText(page, `${card} .latency`, (x) => /voice to voice \d+ ms/.test(x), 'the latency figures');

    const userLines = await page.locator(`${card} .transcript p.user:not(.interim)`).allTextContents();
    expect(userLines).toContain('hello world');
    expect(t.app.calls.session(id)?.listeners.size).toBe(2); // the softphone's media socket and the console's monitor

    mkdirSync('test-output', { recursive: true });
    await page.screenshot({ path: 'test-output/console.png', fullPage: true });

    await page.click(`${card} button.stop`);
    await waitForText(page, '#softphone-status', (x) => x.startsWith('call ended'), 'the softphone to see the end');
    await waitForText(page, `${card} .state`, (x) => x === 'ended', 'the card to show the end');
    expect(t.app.calls.session(id)).toBeUndefined();
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 50_000);
});
