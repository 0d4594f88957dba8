// A local HTTP server standing in for an EVENTS_WEBHOOK_URL receiver: records every POSTed event, and can be told
// to answer with an error status for a while (to exercise retries).

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitUntil } from './wait.js';

export interface ReceivedEvent {
  type: string;
  publisher: string;
  data_type: string;
  data: Record<string, unknown>;
}

export class WebhookReceiver {
  readonly events: ReceivedEvent[] = [];
  /** Raw bodies as received, for byte-level checks. */
  readonly bodies: string[] = [];
  /** Requests answered so far, including failures. */
  attempts = 0;
  /** While > 0, each request is answered with `failStatus` and this is decremented. */
  failNext = 0;
  failStatus = 500;

  private readonly server: Server;
  url = '';

  private constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.attempts++;
        if (this.failNext > 0) {
          this.failNext--;
          res.writeHead(this.failStatus).end();
          return;
        }
        const body = Buffer.concat(chunks).toString('utf8');
        this.bodies.push(body);
        this.events.push(JSON.parse(body) as ReceivedEvent);
        res.writeHead(204).end();
      });
    });
  }

  static async start(path = '/hooks/pipecat'): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver();
    await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
    const { port } = receiver.server.address() as AddressInfo;
    receiver.url = `http://127.0.0.1:${port}${path}`;
    return receiver;
  }

  of(id: string): ReceivedEvent[] {
    return this.events.filter((e) => e.data.id === id || e.data.pipecatcall_id === id);
  }

  async until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    await waitUntil(what, predicate, timeoutMs);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
