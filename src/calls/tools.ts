// The LLM tools of SPEC §8: for ai_call references the nine tools executed by RPC at ai-manager; for call
// references only stop_service, executed here (finish the sentence, hand the call back to the dialplan).

import { messageOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { ToolExecutor, ToolOutcome } from '../pipeline/llm-processor.js';
import type { LlmTool, LlmToolCall } from '../providers/types.js';
import type { SiblingPort } from './ports.js';

const RUN_LLM = {
  run_llm: {
    type: 'boolean',
    description: 'Set true to speak a short confirmation to the caller after the tool has run.',
    default: false,
  },
} as const;

const ADDRESS_TYPES_SOURCE = ['agent', 'conference', 'extension', 'sip', 'tel'];
const address = (types: readonly string[], description: string): Record<string, unknown> => ({
  type: 'object',
  description,
  properties: {
    type: { type: 'string', enum: types, description: 'Kind of address' },
    target: { type: 'string', description: 'The address itself (number in E.164 for tel, URI for sip, id for agent…)' },
    target_name: { type: 'string', description: 'Display name' },
  },
  required: ['type', 'target'],
});

/** The nine ai-manager tools, with their OpenAI function schemas. */
export const AI_CALL_TOOLS: readonly LlmTool[] = [
  {
    name: 'connect_call',
    description: 'Connect the caller to another party: an agent, a conference, an extension, a SIP URI or a phone number.',
    parameters: {
      type: 'object',
      properties: {
        source: address(ADDRESS_TYPES_SOURCE, 'The address the new call comes from'),
        destinations: {
          type: 'array',
          description: 'Where to connect the caller',
          items: address([...ADDRESS_TYPES_SOURCE, 'line'], 'A destination'),
        },
        ...RUN_LLM,
      },
      required: ['destinations'],
    },
  },
  {
    name: 'send_email',
    description: 'Send an email, optionally with call recordings attached.',
    parameters: {
      type: 'object',
      properties: {
        destinations: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              type: { type: 'string', enum: ['email'] },
              target: { type: 'string', description: 'Email address' },
              target_name: { type: 'string' },
            },
            required: ['type', 'target'],
          },
        },
        subject: { type: 'string' },
        content: { type: 'string' },
        attachments: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              reference_type: { type: 'string', enum: ['recording'] },
              reference_id: { type: 'string', description: 'Recording id' },
            },
            required: ['reference_type', 'reference_id'],
          },
        },
        ...RUN_LLM,
      },
      required: ['destinations', 'subject', 'content'],
    },
  },
  {
    name: 'stop_media',
    description: 'Stop the media (music or prompt) currently playing on the call.',
    parameters: { type: 'object', properties: { ...RUN_LLM } },
  },
  {
    name: 'send_message',
    description: 'Send a text message (SMS) from a phone number to one or more phone numbers.',
    parameters: {
      type: 'object',
      properties: {
        source: address(['tel'], 'The sending number (E.164)'),
        destinations: { type: 'array', items: address(['tel'], 'A receiving number (E.164)') },
        text: { type: 'string' },
        ...RUN_LLM,
      },
      required: ['destinations', 'text'],
    },
  },
  {
    name: 'stop_service',
    description: 'End this AI conversation; the call flow continues with its next step.',
    parameters: { type: 'object', properties: {} },
  },
  {
    name: 'stop_flow',
    description: 'End the whole call flow.',
    parameters: { type: 'object', properties: {} },
  },
  {
    name: 'set_variables',
    description: 'Store variables in the call flow for later steps.',
    parameters: {
      type: 'object',
      properties: {
        variables: { type: 'object', additionalProperties: { type: 'string' }, description: 'Names and string values' },
        ...RUN_LLM,
      },
      required: ['variables'],
    },
  },
  {
    name: 'get_variables',
    description: 'Read the variables of the call flow.',
    parameters: { type: 'object', properties: { ...RUN_LLM } },
  },
  {
    name: 'get_aicall_messages',
    description: 'Read the messages of an AI call.',
    parameters: {
      type: 'object',
      properties: { aicall_id: { type: 'string', description: 'The AI call id' }, ...RUN_LLM },
      required: ['aicall_id'],
    },
  },
];

const errorResult = (error: string): string => JSON.stringify({ status: 'error', error });

/** Splits the run_llm flag off the arguments (it is ours, not ai-manager's). */
export function takeRunLlm(args: string): { args: string; runLlm: boolean } {
  let parsed: unknown;
  try {
    parsed = args.trim() === '' ? {} : JSON.parse(args);
  } catch {
    return { args, runLlm: false };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { args, runLlm: false };
  const o = { ...(parsed as Record<string, unknown>) };
  const runLlm = o.run_llm === true;
  if (!('run_llm' in o)) return { args, runLlm };
  delete o.run_llm;
  return { args: JSON.stringify(o), runLlm };
}

/** ai_call references: every tool is executed by ai-manager; its JSON reply is the result. */
export class AiManagerTools implements ToolExecutor {
  readonly tools = AI_CALL_TOOLS;

  constructor(
    private readonly siblings: SiblingPort,
    private readonly aicallId: string,
    private readonly log: Logger,
  ) {}

  async execute(call: LlmToolCall, signal: AbortSignal): Promise<ToolOutcome> {
    if (!this.tools.some((t) => t.name === call.name)) {
      return { result: errorResult(`unknown tool ${call.name}`), runLlm: true, endCall: false };
    }
    const { args, runLlm } = takeRunLlm(call.arguments);
    try {
      const result = await this.siblings.executeTool(this.aicallId, { id: call.id, name: call.name, arguments: args }, signal);
      this.log.info({ tool: call.name }, 'tool executed');
      return { result, runLlm, endCall: false };
    } catch (err) {
      this.log.warn({ tool: call.name, err: messageOf(err) }, 'tool failed');
      return { result: errorResult(messageOf(err)), runLlm: true, endCall: false };
    }
  }
}

/** call references: only stop_service, done here. */
export class LocalCallTools implements ToolExecutor {
  readonly tools: readonly LlmTool[] = [
    {
      name: 'stop_service',
      description: 'End this AI conversation once you have said goodbye; the call continues in the dialplan.',
      parameters: { type: 'object', properties: {} },
    },
  ];

  execute(call: LlmToolCall): Promise<ToolOutcome> {
    if (call.name !== 'stop_service') {
      return Promise.resolve({ result: errorResult(`unknown tool ${call.name}`), runLlm: true, endCall: false });
    }
    return Promise.resolve({ result: JSON.stringify({ status: 'ok' }), runLlm: false, endCall: true });
  }
}
