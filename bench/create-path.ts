// The create path as ai-manager drives it (issue 11 item 5), standalone:
//   npx tsx bench/create-path.ts [--creates 200] [--concurrency 20] [--ai-delay 800] [--cm-delay 0] [--no-build]
//                                [--out bench/results-create-path.json]
// Builds and starts the real daemon (CALL_MANAGER=on), answers its sibling requests on the real RabbitMQ as
// ai-manager (GET /v1/aicalls/<id>, GET /v1/ais/<id>) and call-manager (POST /v1/external-medias) with a fixed
// delay each, and sends N creates of ai-manager's default ai_call (ElevenLabs voice, Deepgram, OpenAI) with C in
// flight. Reports the create reply latency (publish → reply) and which sibling requests each create made before
// its reply. No media ever connects, so the AI-key lookup (made at pipeline start) must not appear at all.

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { BenchDaemon, ROOT } from './lib/daemon.js';
import { machineInfo, load } from './lib/machine.js';
import { createBenchServices } from './lib/services.js';
import { quantileSorted, round } from './lib/stats.js';

const run = promisify(execFile);
const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = `${SHARED}.127.0.0.1`;
const AI_MANAGER = 'bin-manager.ai-manager.request';
const CALL_MANAGER = 'bin-manager.call-manager.request';
const REPLY_TO = 'amq.rabbitmq.reply-to';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}
const CREATES = Number(arg('creates', '200'));
const CONCURRENCY = Number(arg('concurrency', '20'));
const AI_DELAY_MS = Number(arg('ai-delay', '800'));
const CM_DELAY_MS = Number(arg('cm-delay', '0'));
const OUT = arg('out', `${ROOT}/bench/results-create-path.json`);

/** One sibling request the daemon made: which queue, method and URI, and when it arrived. */
interface Seen {
  queue: string;
  method: string;
  uri: string;
  /** The pipecatcall or aicall id it concerns ('' when none could be read). */
  subject: string;
  at: number;
}

/** ai-manager and call-manager stand-ins: reply after a fixed delay, record every request. */
async function startSiblings(ch: Channel, seen: Seen[], aicallOf: Map<string, string>): Promise<void> {
  const reply = (msg: ConsumeMessage, delayMs: number, data: unknown, status = 200): void => {
    const body = Buffer.from(JSON.stringify({ status_code: status, data_type: data === undefined ? '' : 'application/json', ...(data === undefined ? {} : { data }) }));
    setTimeout(() => {
      ch.sendToQueue(String(msg.properties.replyTo), body, { contentType: 'text/plain', correlationId: String(msg.properties.correlationId) });
    }, delayMs);
  };
  for (const queue of [AI_MANAGER, CALL_MANAGER]) {
    await ch.assertQueue(queue, { durable: false, autoDelete: true });
    await ch.consume(
      queue,
      (msg) => {
        if (msg === null) return;
        const req = JSON.parse(msg.content.toString('utf8')) as { uri?: string; method?: string; data?: { id?: string } };
        const uri = String(req.uri);
        const method = String(req.method);
        const segment = uri.split('/')[3] ?? '';
        const subject = uri === '/v1/external-medias' ? String(req.data?.id ?? '') : segment;
        seen.push({ queue, method, uri, subject, at: performance.now() });
        if (queue === CALL_MANAGER) {
          reply(msg, CM_DELAY_MS, uri.startsWith('/v1/calls/') ? { status: 'progressing' } : { id: subject });
        } else if (uri.startsWith('/v1/aicalls/') && aicallOf.has(segment)) {
          reply(msg, AI_DELAY_MS, { id: segment, ai_id: 'ai-bench', reference_type: 'call', reference_id: aicallOf.get(segment) });
        } else if (uri.startsWith('/v1/ais/')) {
          reply(msg, AI_DELAY_MS, { id: segment, engine_key: 'sk-bench-engine-key' });
        } else {
          reply(msg, AI_DELAY_MS, undefined, 404);
        }
      },
      { noAck: true },
    );
  }
}

/** ai-manager's side of the RPC: envelopes of SPEC §4.1 over direct reply-to. */
class Requester {
  private readonly pending = new Map<string, (status: number) => void>();
  constructor(private readonly ch: Channel) {}

  async listen(): Promise<void> {
    await this.ch.consume(
      REPLY_TO,
      (msg) => {
        if (msg === null) return;
        const done = this.pending.get(String(msg.properties.correlationId));
        this.pending.delete(String(msg.properties.correlationId));
        done?.((JSON.parse(msg.content.toString('utf8')) as { status_code: number }).status_code);
      },
      { noAck: true },
    );
  }

  request(queue: string, uri: string, method: string, data?: unknown): Promise<number> {
    const id = randomUUID();
    const body = { uri, method, publisher: 'ai-manager', data_type: data === undefined ? '' : 'application/json', ...(data === undefined ? {} : { data }) };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no reply to ${method} ${uri} within 10 s`));
      }, 10_000);
      this.pending.set(id, (status) => {
        clearTimeout(timer);
        resolve(status);
      });
      this.ch.sendToQueue(queue, Buffer.from(JSON.stringify(body)), { replyTo: REPLY_TO, correlationId: id, contentType: 'text/plain' });
    });
  }
}

/** ai-manager's default pipecatcall for an AI without its own TTS setting (issue 11). */
function defaultCreate(id: string, aicallId: string): Record<string, unknown> {
  return {
    id,
    customer_id: randomUUID(),
    activeflow_id: randomUUID(),
    reference_type: 'ai_call',
    reference_id: aicallId,
    llm_type: 'openai.gpt-4o-mini',
    llm_messages: [{ role: 'system', content: 'You are a helpful assistant.' }],
    stt_type: 'deepgram',
    stt_language: 'en-US',
    tts_type: 'elevenlabs',
    tts_language: 'en-US',
    tts_voice_id: 'EXAVITQu4vr4xnSDxMaL',
  };
}

interface CreateResult {
  id: string;
  aicallId: string;
  ms: number;
  status: number;
  repliedAt: number;
}

const ms = (x: number): number | null => round(x, 1);

async function main(): Promise<void> {
  if (!process.argv.includes('--no-build')) {
    console.log('building the daemon (tsc -p tsconfig.build.json) …');
    await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, timeout: 600_000 });
  }
  const services = await createBenchServices();
  const ids: string[] = [];
  let daemon: BenchDaemon | undefined;
  let conn: ChannelModel | undefined;
  try {
    daemon = await BenchDaemon.start({
      env: {
        DATABASE_DSN: `mysql://root@127.0.0.1:3306/${services.database}`,
        REDIS_ADDRESS: '127.0.0.1:6379',
        REDIS_DATABASE: String(services.redisDb),
        RABBITMQ_ADDRESS: services.rabbitUrl,
        CALL_MANAGER: 'on',
        // Checked at create (never contacted: no media connects in this bench).
        OPENAI_API_KEY: 'sk-bench-instance-key',
        DEEPGRAM_API_KEY: 'bench-deepgram-key',
        ELEVENLABS_API_KEY: 'bench-elevenlabs-key',
      },
    });
    conn = await amqp.connect(services.rabbitUrl, { noDelay: true });
    conn.on('error', () => undefined);
    const siblingCh = await conn.createChannel();
    const seen: Seen[] = [];
    const aicallOf = new Map<string, string>(); // aicall id → the call it references
    await startSiblings(siblingCh, seen, aicallOf);
    const requester = new Requester(await conn.createChannel());
    await requester.listen();

    const createOne = async (): Promise<CreateResult> => {
      const id = randomUUID();
      const aicallId = randomUUID();
      aicallOf.set(aicallId, randomUUID());
      ids.push(id);
      const t0 = performance.now();
      const status = await requester.request(SHARED, '/v1/pipecatcalls', 'POST', defaultCreate(id, aicallId));
      const repliedAt = performance.now();
      return { id, aicallId, ms: repliedAt - t0, status, repliedAt };
    };

    // Warm-up (first-use costs of the daemon's pools and JIT), not measured.
    for (let i = 0; i < 5; i++) await createOne();
    const warm = ids.length;
    const seenFrom = seen.length;

    console.log(`${CREATES} creates, ${CONCURRENCY} in flight; ai-manager answers in ${AI_DELAY_MS} ms, call-manager in ${CM_DELAY_MS} ms`);
    const results: CreateResult[] = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < CREATES) {
          next++;
          results.push(await createOne());
        }
      }),
    );
    const wallMs = performance.now() - t0;
    const measured = seen.slice(seenFrom);

    // Sibling requests per create, made before its reply (attributed by the pipecatcall or aicall id they name).
    const perCreate = results.map((r) => measured.filter((s) => (s.subject === r.id || s.subject === r.aicallId) && s.at <= r.repliedAt));
    const kinds = new Map<string, number>();
    for (const list of perCreate) for (const s of list) kinds.set(`${s.method} ${s.uri.replace(/[0-9a-f-]{36}/g, '<id>')}`, (kinds.get(`${s.method} ${s.uri.replace(/[0-9a-f-]{36}/g, '<id>')}`) ?? 0) + 1);
    const counts = perCreate.map((l) => l.length).sort((a, b) => a - b);
    const keyLookups = measured.filter((s) => s.uri.startsWith('/v1/ais/')).length;
    const sorted = Float64Array.from(results.map((r) => r.ms)).sort();
    const ok = results.filter((r) => r.status === 200).length;

    const rows: Array<[string, string]> = [
      ['creates (200 replies / sent)', `${ok} / ${results.length}`],
      ['create reply p50 (ms)', String(ms(quantileSorted(sorted, 0.5)))],
      ['create reply p95 (ms)', String(ms(quantileSorted(sorted, 0.95)))],
      ['create reply p99 (ms)', String(ms(quantileSorted(sorted, 0.99)))],
      ['create reply max (ms)', String(ms(sorted[sorted.length - 1] ?? Number.NaN))],
      ['throughput (creates/s)', String(round(results.length / (wallMs / 1000), 1))],
      ['sibling requests per create (min–max)', `${counts[0] ?? 0}–${counts[counts.length - 1] ?? 0}`],
      ...[...kinds.entries()].map(([k, n]): [string, string] => [`  ${k}`, `${n} (${round(n / results.length, 2)} per create)`]),
      ['GET /v1/ais/<id> during the run (no media: must be 0)', String(keyLookups)],
      ['load average at the end (1/5/15 min)', load().map((x) => x.toFixed(2)).join(' / ')],
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);

    await writeFile(
      OUT,
      `${JSON.stringify(
        {
          at: new Date().toISOString(),
          machine: machineInfo(),
          loadAtEnd: load(),
          settings: { creates: CREATES, concurrency: CONCURRENCY, aiManagerDelayMs: AI_DELAY_MS, callManagerDelayMs: CM_DELAY_MS, warmUp: warm },
          createReplyMs: { p50: ms(quantileSorted(sorted, 0.5)), p95: ms(quantileSorted(sorted, 0.95)), p99: ms(quantileSorted(sorted, 0.99)), max: ms(sorted[sorted.length - 1] ?? Number.NaN) },
          ok,
          sent: results.length,
          createsPerSecond: round(results.length / (wallMs / 1000), 1),
          siblingRequestsPerCreate: { min: counts[0] ?? 0, max: counts[counts.length - 1] ?? 0, byKind: Object.fromEntries(kinds) },
          aiKeyLookupsDuringRun: keyLookups,
        },
        null,
        2,
      )}\n`,
    );
    console.log(`wrote ${OUT}`);

    // Every call created is stopped again (its DELETE /v1/external-medias is not part of the create path).
    for (const id of ids) await requester.request(HOST, `/v1/pipecatcalls/${id}/stop`, 'POST').catch(() => 0);
  } finally {
    await conn?.close().catch(() => undefined);
    await daemon?.stop();
    const problems = await services.cleanup(ids);
    for (const p of problems) console.error(`cleanup: ${p}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
