// The sibling services a call talks to over RabbitMQ RPC (SPEC §5.1): call-manager for external media and
// ai-manager for aicalls, AI keys and tool execution. Implements the port calls/ declares.

import type { Aicall, SiblingPort } from '../calls/ports.js';
import { BadRequestError, DependencyError } from '../errors.js';
import type { RpcClient } from './client.js';

export const CALL_MANAGER_QUEUE = 'bin-manager.call-manager.request';
export const AI_MANAGER_QUEUE = 'bin-manager.ai-manager.request';

function objectOf(data: unknown, what: string): Record<string, unknown> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new DependencyError(what.split(' ')[0] ?? what, `${what}: the reply has no JSON object`);
  }
  return data as Record<string, unknown>;
}

const str = (o: Record<string, unknown>, k: string): string => (typeof o[k] === 'string' ? (o[k]) : '');

export class SiblingClient implements SiblingPort {
  constructor(private readonly rpc: Pick<RpcClient, 'request'>) {}

  /** The call's status at call-manager (e.g. `progressing`, `hangup`). */
  async callStatus(callId: string, signal?: AbortSignal): Promise<string> {
    const r = await this.rpc.request(CALL_MANAGER_QUEUE, { uri: `/v1/calls/${callId}`, method: 'GET' }, signal ? { signal } : {});
    return str(objectOf(r.data, 'call-manager GET /v1/calls'), 'status');
  }

  /** Asks call-manager to connect the call's media to our Audiosocket server (Asterisk dials us with the id). */
  async createExternalMedia(pipecatcallId: string, callId: string, externalHost: string, signal?: AbortSignal): Promise<void> {
    await this.rpc.request(
      CALL_MANAGER_QUEUE,
      {
        uri: '/v1/external-medias',
        method: 'POST',
        data: {
          id: pipecatcallId,
          reference_type: 'call',
          reference_id: callId,
          external_host: externalHost,
          encapsulation: 'audiosocket',
          transport: 'tcp',
          connection_type: 'client',
          format: 'slin',
          direction_listen: 'in',
          direction_speak: 'out',
        },
      },
      signal ? { signal } : {},
    );
  }

  async deleteExternalMedia(pipecatcallId: string, signal?: AbortSignal): Promise<void> {
    await this.rpc.request(
      CALL_MANAGER_QUEUE,
      { uri: `/v1/external-medias/${pipecatcallId}`, method: 'DELETE' },
      signal ? { signal } : {},
    );
  }

  async getAicall(aicallId: string, signal?: AbortSignal): Promise<Aicall> {
    const r = await this.rpc.request(AI_MANAGER_QUEUE, { uri: `/v1/aicalls/${aicallId}`, method: 'GET' }, signal ? { signal } : {});
    const o = objectOf(r.data, 'ai-manager GET /v1/aicalls');
    return { reference_type: str(o, 'reference_type'), reference_id: str(o, 'reference_id'), ai_id: str(o, 'ai_id') };
  }

  /** The AI's LLM key (`engine_key`); '' when the AI has none. */
  async getAiEngineKey(aiId: string, signal?: AbortSignal): Promise<string> {
    if (aiId === '') throw new BadRequestError('the aicall names no ai_id');
    const r = await this.rpc.request(AI_MANAGER_QUEUE, { uri: `/v1/ais/${aiId}`, method: 'GET' }, signal ? { signal } : {});
    return str(objectOf(r.data, 'ai-manager GET /v1/ais'), 'engine_key');
  }

  /**
   * Executes one tool call at ai-manager and returns its JSON reply as text (it goes into the context verbatim).
   */
  async executeTool(
    aicallId: string,
    toolCall: { id: string; name: string; arguments: string },
    signal?: AbortSignal,
  ): Promise<string> {
    const r = await this.rpc.request(
      AI_MANAGER_QUEUE,
      {
        uri: `/v1/aicalls/${aicallId}/tool_execute`,
        method: 'POST',
        data: { id: toolCall.id, type: 'function', function: { name: toolCall.name, arguments: toolCall.arguments } },
      },
      signal ? { signal } : {},
    );
    return r.data === undefined ? '{}' : JSON.stringify(r.data);
  }
}
