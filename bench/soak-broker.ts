// The RabbitMQ side of the soak, as the daemon's siblings would speak it (SPEC §4): RPC requests to the daemon
// (create, messages, stop) over direct reply-to, a stand-in ai-manager answering GET /v1/aicalls/<id> and
// GET /v1/ais/<id> (so ai_call sessions with a `conversation` reference run text-only, §5.1), and a consumer of the
// event exchange that lets a lifecycle wait for its call's bot message.

import { randomUUID } from 'node:crypto';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';

export const SHARED_QUEUE = 'bin-manager.pipecat-manager.request';
export const HOST_QUEUE = `${SHARED_QUEUE}.127.0.0.1`;
const AI_MANAGER_QUEUE = 'bin-manager.ai-manager.request';
const EVENT_EXCHANGE = 'bin-manager.pipecat-manager.event';
const REPLY_TO = 'amq.rabbitmq.reply-to';

export interface RpcReply {
  status_code: number;
  data?: unknown;
}

export class SoakBroker {
  private readonly pending = new Map<string, (body: RpcReply) => void>();
  /** pipecatcall id → resolver of "an event of this type arrived for it". */
  private readonly waiters = new Map<string, { type: string; resolve: () => void }>();
  aiManagerRequests = 0;

  private constructor(
    private readonly conn: ChannelModel,
    private readonly ch: Channel,
  ) {}

  static async connect(url: string): Promise<SoakBroker> {
    const conn = await amqp.connect(url, { noDelay: true });
    conn.on('error', () => undefined);
    const ch = await conn.createChannel();
    const b = new SoakBroker(conn, ch);
    await ch.consume(REPLY_TO, (msg) => b.onReply(msg), { noAck: true });
    // The stand-in ai-manager: every aicall is a conversation (text-only) whose AI has no key of its own.
    await ch.assertQueue(AI_MANAGER_QUEUE, { durable: false, autoDelete: true });
    await ch.consume(AI_MANAGER_QUEUE, (msg) => b.onAiManager(msg), { noAck: true });
    await ch.assertExchange(EVENT_EXCHANGE, 'fanout', { durable: true });
    const q = await ch.assertQueue('', { exclusive: true, autoDelete: true });
    await ch.bindQueue(q.queue, EVENT_EXCHANGE, '');
    await ch.consume(q.queue, (msg) => b.onEvent(msg), { noAck: true });
    return b;
  }

  private onReply(msg: ConsumeMessage | null): void {
    if (msg === null) return;
    const id = String(msg.properties.correlationId);
    const resolve = this.pending.get(id);
    this.pending.delete(id);
    resolve?.(JSON.parse(msg.content.toString('utf8')) as RpcReply);
  }

  private onAiManager(msg: ConsumeMessage | null): void {
    if (msg === null) return;
    this.aiManagerRequests++;
    const req = JSON.parse(msg.content.toString('utf8')) as { uri: string };
    let data: unknown;
    if (req.uri.startsWith('/v1/aicalls/')) {
      data = { id: req.uri.slice('/v1/aicalls/'.length), reference_type: 'conversation', reference_id: randomUUID(), ai_id: randomUUID() };
    } else if (req.uri.startsWith('/v1/ais/')) {
      data = { id: req.uri.slice('/v1/ais/'.length), engine_key: '' };
    }
    const body = data === undefined ? { status_code: 404, data_type: '' } : { status_code: 200, data_type: 'application/json', data };
    const replyTo = msg.properties.replyTo as string | undefined;
    if (replyTo === undefined) return;
    const correlationId = msg.properties.correlationId as string | undefined;
    this.ch.sendToQueue(replyTo, Buffer.from(JSON.stringify(body)), {
      contentType: 'text/plain',
      ...(correlationId === undefined ? {} : { correlationId }),
    });
  }

  private onEvent(msg: ConsumeMessage | null): void {
    if (msg === null) return;
    const ev = JSON.parse(msg.content.toString('utf8')) as { type: string; data?: { pipecatcall_id?: string; id?: string } };
    const callId = ev.data?.pipecatcall_id ?? ev.data?.id;
    if (callId === undefined) return;
    const w = this.waiters.get(callId);
    if (w !== undefined && w.type === ev.type) {
      this.waiters.delete(callId);
      w.resolve();
    }
  }

  /** Resolves when an event of `type` for call `id` arrives; rejects after `timeoutMs`. Register before triggering. */
  waitEvent(id: string, type: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`no ${type} event for ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(id, {
        type,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  cancelWait(id: string): void {
    this.waiters.delete(id);
  }

  request(queue: string, uri: string, method: string, data?: unknown): Promise<RpcReply> {
    const id = randomUUID();
    const body: Record<string, unknown> = { uri, method, publisher: 'soak-manager', data_type: data === undefined ? '' : 'application/json' };
    if (data !== undefined) body.data = data;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no reply to ${method} ${uri} within 15 s`));
      }, 15_000);
      this.pending.set(id, (b) => {
        clearTimeout(timer);
        resolve(b);
      });
      this.ch.sendToQueue(queue, Buffer.from(JSON.stringify(body)), { replyTo: REPLY_TO, correlationId: id, contentType: 'text/plain' });
    });
  }

  /** A request that must answer 200. */
  async ok(queue: string, uri: string, method: string, data?: unknown): Promise<RpcReply> {
    const r = await this.request(queue, uri, method, data);
    if (r.status_code !== 200) throw new Error(`${method} ${uri} answered ${r.status_code}: ${JSON.stringify(r.data ?? null)}`);
    return r;
  }

  async close(): Promise<void> {
    await this.conn.close().catch(() => undefined);
  }
}
