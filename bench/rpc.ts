// The RPC scenario: create + get round trips over the real RabbitMQ broker, as a Go sibling would send them
// (amqplib directly: envelopes of SPEC §4.1, direct reply-to, correlation ids). Sequential round trips for the
// latency, then W concurrent workers for the throughput. Every call created is stopped again.

import { randomUUID } from 'node:crypto';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { summarize, type Summary } from './lib/stats.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = `${SHARED}.127.0.0.1`;
const REPLY_TO = 'amq.rabbitmq.reply-to';

export interface RpcOptions {
  url: string;
  sequential: number;
  workers: number;
  seconds: number;
  log: (line: string) => void;
}

export interface RpcResult {
  sequential: { createMs: Summary; getMs: Summary; createPlusGetMs: Summary };
  throughput: { workers: number; seconds: number; requests: number; requestsPerSecond: number; createPlusGetPerSecond: number; errors: number };
}

class RpcClient {
  private readonly pending = new Map<string, (body: { status_code: number }) => void>();
  private constructor(
    private readonly conn: ChannelModel,
    private readonly ch: Channel,
  ) {}

  static async connect(url: string): Promise<RpcClient> {
    const conn = await amqp.connect(url, { noDelay: true });
    conn.on('error', () => undefined);
    const ch = await conn.createChannel();
    const client = new RpcClient(conn, ch);
    await ch.consume(REPLY_TO, (msg: ConsumeMessage | null) => {
      if (msg === null) return;
      const id = String(msg.properties.correlationId);
      const resolve = client.pending.get(id);
      client.pending.delete(id);
      resolve?.(JSON.parse(msg.content.toString('utf8')) as { status_code: number });
    }, { noAck: true });
    return client;
  }

  request(queue: string, uri: string, method: string, data?: unknown): Promise<{ status_code: number }> {
    const id = randomUUID();
    const body: Record<string, unknown> = { uri, method, publisher: 'bench-manager', data_type: data === undefined ? '' : 'application/json' };
    if (data !== undefined) body.data = data;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no reply to ${method} ${uri} within 10 s`));
      }, 10_000);
      this.pending.set(id, (b) => {
        clearTimeout(timer);
        resolve(b);
      });
      this.ch.sendToQueue(queue, Buffer.from(JSON.stringify(body)), { replyTo: REPLY_TO, correlationId: id, contentType: 'text/plain' });
    });
  }

  async close(): Promise<void> {
    await this.conn.close().catch(() => undefined);
  }
}

async function createGetStop(rpc: RpcClient, ids: string[]): Promise<{ create: number; get: number }> {
  const id = randomUUID();
  ids.push(id);
  const t0 = performance.now();
  const c = await rpc.request(SHARED, '/v1/pipecatcalls', 'POST', { id, reference_type: 'call', llm_type: 'local.echo' });
  const t1 = performance.now();
  const g = await rpc.request(HOST, `/v1/pipecatcalls/${id}`, 'GET');
  const t2 = performance.now();
  if (c.status_code !== 200 || g.status_code !== 200) throw new Error(`create ${c.status_code}, get ${g.status_code}`);
  const s = await rpc.request(HOST, `/v1/pipecatcalls/${id}/stop`, 'POST');
  if (s.status_code !== 200) throw new Error(`stop ${s.status_code}`);
  return { create: t1 - t0, get: t2 - t1 };
}

export async function runRpc(o: RpcOptions): Promise<{ result: RpcResult; ids: string[] }> {
  const ids: string[] = [];
  const rpc = await RpcClient.connect(o.url);
  try {
    for (let i = 0; i < 20; i++) await createGetStop(rpc, ids); // warm-up
    const create: number[] = [];
    const get: number[] = [];
    const pair: number[] = [];
    for (let i = 0; i < o.sequential; i++) {
      const r = await createGetStop(rpc, ids);
      create.push(r.create);
      get.push(r.get);
      pair.push(r.create + r.get);
    }
    let requests = 0;
    let pairs = 0;
    let errors = 0;
    const t0 = performance.now();
    const end = t0 + o.seconds * 1000;
    await Promise.all(
      Array.from({ length: o.workers }, async () => {
        while (performance.now() < end) {
          try {
            await createGetStop(rpc, ids);
            requests += 3;
            pairs++;
          } catch {
            errors++;
          }
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    return {
      ids,
      result: {
        sequential: { createMs: summarize(create), getMs: summarize(get), createPlusGetMs: summarize(pair) },
        throughput: { workers: o.workers, seconds, requests, requestsPerSecond: requests / seconds, createPlusGetPerSecond: pairs / seconds, errors },
      },
    };
  } finally {
    await rpc.close();
  }
}
