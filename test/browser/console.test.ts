// The operator console in Debian's chromium (playwright-core): a softphone call whose fake microphone speaks a few
// turns, one of them over the bot's reply (a barge-in), is listed with its transcript, latency, level meters and
// turn timeline; the headroom charts update; the call is ended with the stop button and then found in past calls.

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

/**
 * 16 kHz mono, looped by Chromium as the microphone: "hello world" after the greeting, then "weasels have eaten our
 * phone system", whose echo (≈3 s of speech) the caller interrupts with "hello world" 2.6 s after finishing.
 */
async function fakeMicrophoneWav(dir: string): Promise<string> {
  const [hello, weasels] = await Promise.all([loadPrompt('hello-world', 16000), loadPrompt('tt-weasels', 16000)]);
  const silence = (s: number): Buffer => Buffer.alloc(Math.round(16000 * s) * 2);
  const pcm = Buffer.concat([silence(2.5), hello, silence(4), weasels, silence(2.6), hello, silence(5)]);
  const path = join(dir, 'turns-16k.wav');
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

/** Polls a value computed from the page (through locators) until `accept` takes it. */
async function waitFor<T>(read: () => Promise<T>, accept: (v: T) => boolean, what: string, timeout = 30_000): Promise<T> {
  const end = performance.now() + timeout;
  for (;;) {
    const v = await read();
    if (accept(v)) return v;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}: last ${JSON.stringify(v)} (page errors: ${JSON.stringify(pageErrors)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const STAGE_ORDER = ['speech', 'vad_stop', 'stt_final', 'turn_end', 'llm_first_token', 'tts_first_audio', 'first_bot_frame'];

interface Row {
  turn: number;
  bars: Array<{ stage: string; from: number }>;
  barge: string | null;
}

async function timelineRows(page: Page, scope: string): Promise<Row[]> {
  const rows = page.locator(`${scope} svg.timeline g.turn-row`);
  const out: Row[] = [];
  for (const row of await rows.all()) {
    const bars = await row.locator('rect.stage-bar').evaluateAll((els: Array<{ getAttribute(name: string): string | null }>) =>
      els.map((e) => ({ stage: e.getAttribute('data-stage') ?? '', from: Number(e.getAttribute('data-from')) })),
    );
    const barge = row.locator('line.barge');
    out.push({ turn: Number(await row.getAttribute('data-turn')), bars, barge: (await barge.count()) > 0 ? await barge.first().getAttribute('data-kind') : null });
  }
  return out;
}

describe('the operator console', () => {
  it('shows a call with a barge-in as a turn timeline, levels and marks; headroom updates; the ended call is in past calls', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1500 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') pageErrors.push(msg.text());
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
    await waitForText(page, '#softphone-transcript', (x) => x.includes('Hello! This is the echo bot.'), 'the greeting on the softphone');
    const answered = (x: string): boolean => x.includes('You said: hello world.');
    await waitForText(page, `${card} .transcript`, answered, 'the answer to the fake microphone in the console', 30_000);
    expect(Number(await page.locator('#bot-frames').textContent())).toBeGreaterThan(25); // the softphone plays the bot
    await waitForText(page, `${card} .latency`, (x) => /voice to voice \d+ ms/.test(x), 'the latency figures');
    // Level meters: the fake microphone's speech and the bot's replies, read from the daemon's last frames.
    await waitFor(() => page.locator(`${card} .meter.caller`).getAttribute('data-db'), (v) => v !== null && v !== '' && Number(v) > -60, 'a caller level');
    await waitFor(() => page.locator(`${card} .meter.bot`).getAttribute('data-db'), (v) => v !== null && v !== '' && Number(v) > -60, 'a bot level', 40_000);

    // Three turns, one of them a barge-in on the long echo of "weasels have eaten our phone system".
    const rows = await waitFor(
      () => timelineRows(page, card),
      (r) => r.length >= 3 && r.some((x) => x.barge === 'confirmed' || x.barge === 'false'),
      'three timeline rows with a barge-in',
      45_000,
    );
    expect(rows.map((r) => r.turn)).toEqual(rows.map((_, i) => (rows[0]?.turn ?? 1) + i)); // one row per turn, in order
    for (const row of rows) {
      const stages = row.bars.map((b) => b.stage);
      // Drawn in the stage order, each stage once.
      expect(stages).toEqual(STAGE_ORDER.filter((s) => stages.includes(s)));
      const from = Object.fromEntries(row.bars.map((b) => [b.stage, b.from]));
      const chain = ['speech', 'llm_first_token', 'tts_first_audio', 'first_bot_frame'].filter((s) => s in from).map((s) => from[s] as number);
      expect(chain).toEqual([...chain].sort((a, b) => a - b));
    }
    expect(rows.filter((r) => r.bars.some((b) => b.stage === 'first_bot_frame')).length).toBeGreaterThanOrEqual(2);
    // The transcript marks the bot line the barge-in cut (or paused).
    await waitFor(() => page.locator(`${card} .transcript p.bot.cut, ${card} .transcript p.bot.paused`).count(), (n) => n > 0, 'a marked bot line');
    const userLines = await page.locator(`${card} .transcript p.user:not(.interim)`).allTextContents();
    expect(userLines).toContain('hello world');

    // Headroom: samples arrive and the charts grow; the live-calls chart shows this call.
    const samples = (): Promise<number> => page.locator('[data-chart="calls"]').getAttribute('data-samples').then(Number);
    const first = await waitFor(samples, (n) => n >= 1, 'headroom samples');
    await waitFor(samples, (n) => n > first, 'the headroom charts to update', 15_000);
    expect(await page.locator('[data-chart="calls"] .value').textContent()).toBe('1');
    expect(Number(await page.locator('[data-chart="cpu"] polyline').first().getAttribute('data-points'))).toBeGreaterThanOrEqual(2);

    mkdirSync('test-output', { recursive: true });
    await page.screenshot({ path: 'test-output/console.png', fullPage: true });

    await page.click(`${card} button.stop`);
    await waitForText(page, '#softphone-status', (x) => x.startsWith('call ended'), 'the softphone to see the end');
    await waitForText(page, `${card} .state`, (x) => x === 'ended', 'the card to show the end');
    await waitForText(page, `${card} .end-reason`, (x) => x === 'ended by stop', 'the card to say why it ended');
    expect(t.app.calls.session(id)).toBeUndefined();

    // Past calls: the ended call is listed (the list reloads when a call ends), the filter finds it alone, and its
    // timeline is still there.
    const pastRow = `#past-rows tr[data-call-id="${id}"]`;
    await waitFor(() => page.locator(pastRow).count(), (n) => n === 1, 'the ended call in past calls');
    await page.selectOption('#past-field', 'id');
    await page.fill('#past-value', id.toUpperCase());
    await page.click('#past-search');
    await waitFor(() => page.locator('#past-rows tr[data-call-id]').count(), (n) => n === 1, 'the filtered list');
    expect(await page.locator(`${pastRow} td.reason`).textContent()).toBe('stop');
    await page.click(pastRow);
    await waitFor(() => page.locator('#past-rows tr.past-timeline g.turn-row').count(), (n) => n >= 3, 'the past call timeline');
    await page.screenshot({ path: 'test-output/console-ended.png', fullPage: true });
    await page.fill('#past-value', '00000000-0000-4000-8000-000000000001');
    await page.click('#past-search');
    await waitForText(page, '#past-status', (x) => x === 'no ended calls match', 'an empty filter result');
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 58_000);
});
