// An RPC peer that speaks SPEC §4 exactly as the old Go siblings do, written on amqplib alone (not src/rpc) so
// the daemon is checked against an independent implementation: one server-named reply queue per request.

import amqp, { type Channel, type ChannelModel, type MessageProperties } from 'amqplib';
import { waitUntil } from './wait.js';

const EVENT_EXCHANGE = 'bin-manager.pipecat-manager.event';

export interface TestReply {
  raw: Buffer;
  json: unknown;
  properties: MessageProperties;
}

export interface TestRequest {
  uri: string;
  method: string;
  data?: unknown;
  publisher?: string;
}

export interface EventSubscription {
  events: unknown[];
  raw: Buffer[];
  /** Resolves once at least n events arrived; rejects after timeoutMs. */
  waitFor(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** The request envelope as a Go sibling marshals it. */
export function goRequestBody(req: TestRequest): Buffer {
  const envelope: Record<string, unknown> = {
    uri: req.uri,
    method: req.method,
    publisher: req.publisher ?? 'test-manager',
    data_type: req.data === undefined ? '' : 'application/json',
  };
  if (req.data !== undefined) envelope.data = req.data;
  return Buffer.from(JSON.stringify(envelope));
}

export class RpcTestClient {
  private constructor(
    private readonly conn: ChannelModel,
    private readonly ch: Channel,
  ) {}

  static async connect(url: string): Promise<RpcTestClient> {
    const conn = await amqp.connect(url, { noDelay: true });
    // Server-side closes (close_all_connections) must not crash the test process.
    conn.on('error', () => undefined);
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    return new RpcTestClient(conn, ch);
  }

  /** Sends one request with a fresh exclusive reply queue and no correlation_id (unless given); awaits the reply. */
  async request(
    queue: string,
    req: TestRequest | Buffer,
    opts: { timeoutMs?: number; correlationId?: string } = {},
  ): Promise<TestReply> {
    const body = Buffer.isBuffer(req) ? req : goRequestBody(req);
    const timeoutMs = opts.timeoutMs ?? 5_000;
    const { queue: replyQueue } = await this.ch.assertQueue('', { exclusive: true, autoDelete: true });
    // A holder object: TS would narrow a plain `let` to undefined across the callback.
    const got: { reply?: TestReply } = {};
    const { consumerTag } = await this.ch.consume(
      replyQueue,
      (msg) => {
        if (msg === null || got.reply !== undefined) return;
        const text = msg.content.toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        got.reply = { raw: msg.content, json, properties: msg.properties };
      },
      { noAck: true },
    );
    try {
      this.ch.sendToQueue(queue, body, {
        replyTo: replyQueue,
        contentType: 'text/plain',
        ...(opts.correlationId === undefined ? {} : { correlationId: opts.correlationId }),
      });
      await waitUntil(`a reply from ${queue}`, () => got.reply !== undefined, timeoutMs);
      if (got.reply === undefined) throw new Error('unreachable');
      return got.reply;
    } finally {
      await this.ch.cancel(consumerTag).catch(() => undefined);
      await this.ch.deleteQueue(replyQueue).catch(() => undefined);
    }
  }

  /** A delayed / fire-and-forget request: no reply_to. */
  async sendWithoutReplyTo(queue: string, body: Buffer | TestRequest): Promise<void> {
    this.ch.sendToQueue(queue, Buffer.isBuffer(body) ? body : goRequestBody(body), { contentType: 'text/plain' });
    // A round trip on the same channel guarantees the publish reached the server before we return.
    await this.ch.checkQueue(queue);
  }

  /**
   * Binds a queue to the event exchange. By default exclusive (dies with this client); with a name the queue is
   * non-exclusive and survives a server-side close of this connection, so a later subscription reads what it kept.
   */
  async subscribeEvents(opts: { queue?: string } = {}): Promise<EventSubscription> {
    const ch = await this.conn.createChannel();
    ch.on('error', () => undefined);
    const { queue } =
      opts.queue === undefined
        ? await ch.assertQueue('', { exclusive: true, autoDelete: true })
        : await ch.assertQueue(opts.queue, { durable: false, exclusive: false, autoDelete: false });
    await ch.bindQueue(queue, EVENT_EXCHANGE, '');
    const events: unknown[] = [];
    const raw: Buffer[] = [];
    await ch.consume(
      queue,
      (msg) => {
        if (msg === null) return;
        raw.push(msg.content);
        events.push(JSON.parse(msg.content.toString('utf8')));
      },
      { noAck: true },
    );
    return {
      events,
      raw,
      waitFor: async (n, timeoutMs = 5_000) => {
        await waitUntil(`${n} events`, () => events.length >= n, timeoutMs);
      },
      close: () => ch.close().catch(() => undefined),
    };
  }

  /**
   * A Go-style sibling on `queue`: fn maps the parsed request to a reply body (undefined = never answer); the
   * reply goes to reply_to with the request's correlation_id copied.
   */
  async respondOn(queue: string, fn: (req: Record<string, unknown>) => Buffer | undefined): Promise<void> {
    const ch = await this.conn.createChannel();
    ch.on('error', () => undefined);
    await ch.assertQueue(queue, { durable: false, autoDelete: true });
    await ch.consume(
      queue,
      (msg) => {
        if (msg === null) return;
        const body = fn(JSON.parse(msg.content.toString('utf8')) as Record<string, unknown>);
        const replyTo: unknown = msg.properties.replyTo;
        const correlationId: unknown = msg.properties.correlationId;
        if (body !== undefined && typeof replyTo === 'string') {
          ch.sendToQueue(replyTo, body, {
            contentType: 'text/plain',
            ...(typeof correlationId === 'string' ? { correlationId } : {}),
          });
        }
      },
      { noAck: true },
    );
  }

  /** Runs fn on a throwaway channel: for checks that may close it (passive declares, mismatched arguments). */
  async withChannel<T>(fn: (ch: Channel) => Promise<T>): Promise<T> {
    const ch = await this.conn.createChannel();
    ch.on('error', () => undefined);
    try {
      return await fn(ch);
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.conn.close().catch(() => undefined);
  }
}
