// The local zero-latency provider fakes of test/fakes, started in the bench process, speaking the providers' real
// protocols to the daemon child process.
//
// Cartesia: the SDK always dials wss://, and a daemon in another process cannot be handed the tests'
// `createConnection` hook. The smallest honest option is real TLS: a self-signed certificate made with `openssl`
// in a temp dir, a TLS terminator in front of the plain fake, and the daemon started with NODE_EXTRA_CA_CERTS
// pointing at the certificate. The daemon then does exactly what it does against api.cartesia.ai (TLS included);
// no test hook or extra configuration is added to src/.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { FakeCartesiaServer } from '../../test/fakes/cartesia-server.js';
import { FakeDeepgramServer } from '../../test/fakes/deepgram-server.js';
import { startFakeOpenAiServer, type FakeOpenAiServer } from '../../test/fakes/openai-server.js';

const run = promisify(execFile);

export const FAKE_KEYS = { openai: 'bench-openai-key', deepgram: 'bench-deepgram-key', cartesia: 'bench-cartesia-key' };
/** The bot's reply to every turn: one short sentence (15 characters → 150 ms of audio from the Cartesia fake). */
export const REPLY_TOKENS = ['Sure', ',', ' one', ' moment', '.'];

export interface Fakes {
  deepgram: FakeDeepgramServer;
  openai: FakeOpenAiServer;
  cartesia: FakeCartesiaServer;
  /** https:// base URL of the TLS terminator in front of the Cartesia fake. */
  cartesiaTlsUrl: string;
  /** PEM certificate file to give the daemon as NODE_EXTRA_CA_CERTS. */
  caFile: string;
  /** Environment for the daemon: providers pointed at the fakes. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** A self-signed certificate for 127.0.0.1 (SAN IP), valid one day, in a fresh temp dir. */
async function makeCertificate(): Promise<{ dir: string; key: Buffer; cert: Buffer; certFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'pipecat-bench-tls-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  try {
    await run('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile,
    ], { timeout: 30_000 });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`openssl could not make the self-signed certificate for the Cartesia fake: ${(err as Error).message}`, { cause: err });
  }
  return { dir, key: await readFile(keyFile), cert: await readFile(certFile), certFile };
}

/** Terminates TLS and pipes each connection to a plain TCP port. */
function startTlsTerminator(key: Buffer, cert: Buffer, targetPort: number): Promise<{ server: TlsServer; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createTlsServer({ key, cert }, (tlsSocket: TLSSocket) => {
    const plain = connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
    tlsSocket.setNoDelay(true);
    sockets.add(tlsSocket);
    sockets.add(plain);
    const done = (): void => {
      tlsSocket.destroy();
      plain.destroy();
      sockets.delete(tlsSocket);
      sockets.delete(plain);
    };
    tlsSocket.on('error', done).on('close', done);
    plain.on('error', done).on('close', done);
    tlsSocket.pipe(plain);
    plain.pipe(tlsSocket);
  });
  server.on('tlsClientError', () => undefined);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('TLS terminator has no address'));
        return;
      }
      resolve({ server, port: address.port, sockets });
    });
  });
}

export async function startFakes(): Promise<Fakes> {
  const deepgram = await FakeDeepgramServer.start({ apiKey: FAKE_KEYS.deepgram });
  const openai = await startFakeOpenAiServer();
  openai.setHandler(() => ({ text: REPLY_TOKENS }));
  const cartesia = await FakeCartesiaServer.start({ apiKey: FAKE_KEYS.cartesia });
  const tls = await makeCertificate();
  const terminator = await startTlsTerminator(tls.key, tls.cert, cartesia.port);
  const cartesiaTlsUrl = `https://127.0.0.1:${terminator.port}`;
  return {
    deepgram,
    openai,
    cartesia,
    cartesiaTlsUrl,
    caFile: tls.certFile,
    env: {
      DEFAULT_LLM_TYPE: 'openai.gpt-4o-mini',
      DEFAULT_STT_TYPE: 'deepgram',
      DEFAULT_TTS_TYPE: 'cartesia',
      DEFAULT_TTS_VOICE_ID: 'bench-voice',
      OPENAI_API_KEY: FAKE_KEYS.openai,
      OPENAI_BASE_URL: openai.baseUrl,
      DEEPGRAM_API_KEY: FAKE_KEYS.deepgram,
      DEEPGRAM_BASE_URL: deepgram.url,
      CARTESIA_API_KEY: FAKE_KEYS.cartesia,
      CARTESIA_BASE_URL: cartesiaTlsUrl,
      NODE_EXTRA_CA_CERTS: tls.certFile,
    },
    async close() {
      for (const s of terminator.sockets) s.destroy();
      await new Promise<void>((resolve) => terminator.server.close(() => resolve()));
      await Promise.allSettled([deepgram.close(), openai.close(), cartesia.close()]);
      await rm(tls.dir, { recursive: true, force: true });
    },
  };
}
